"""Build the named device mesh (`data`, `fsdp`, `tensor`) from config."""

from __future__ import annotations

import math

import jax
from jax.sharding import AxisType, Mesh

from coa_jax.config.errors import ConfigError
from coa_jax.config.schema import MeshConfig
from coa_jax.sharding.rules import MESH_AXES


def resolve_mesh_shape(cfg: MeshConfig, num_devices: int) -> tuple[int, int, int]:
    """Mesh axis sizes for `num_devices`; one axis may be -1 (takes the remaining devices).

    Raises:
      ConfigError: naming `mesh.<axis>` when the sizes cannot tile the devices.
    """
    sizes = {"data": cfg.data, "fsdp": cfg.fsdp, "tensor": cfg.tensor}
    free = [k for k, v in sizes.items() if v == -1]
    if len(free) > 1:
        raise ConfigError([(f"mesh.{free[1]}", "at most one mesh axis may be -1")])
    fixed = math.prod(v for v in sizes.values() if v != -1)
    if free:
        if num_devices % fixed:
            raise ConfigError([(f"mesh.{free[0]}", f"the other axes ({fixed} devices) do not divide the "
                                                   f"{num_devices} available devices")])
        sizes[free[0]] = num_devices // fixed
    elif fixed != num_devices:
        raise ConfigError([("mesh", f"data*fsdp*tensor = {fixed} but {num_devices} devices are available")])
    return sizes["data"], sizes["fsdp"], sizes["tensor"]


def make_mesh(cfg: MeshConfig, devices: list[jax.Device] | None = None) -> Mesh:
    """A mesh over `devices` (default: all devices of all processes) with Auto axis types.

    `devices` may be a subset (a role's device set) or a TPU topology's devices for an
    ahead-of-time compile; jax.make_mesh lays TPU devices out along the physical torus.
    """
    devices = list(jax.devices()) if devices is None else list(devices)
    shape = resolve_mesh_shape(cfg, len(devices))
    return jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * 3, devices=devices)


def validate_for_devices(cfg, num_devices: int) -> tuple[int, int, int]:
    """Checks that need the device count (before anything compiles). Returns the mesh shape.

    Every batch the run will shard (per microbatch) must split over the data x fsdp axes.
    Raises:
      ConfigError: naming `mesh.*` or the batch key that does not split.
    """
    data, fsdp, tensor = resolve_mesh_shape(cfg.mesh, num_devices)
    shards = data * fsdp
    batches = {f"{stage}.batch_rows": getattr(cfg, stage).batch_rows // getattr(cfg, stage).micro_batches
               for stage in ("reasoner", "sft1", "sft2", "sft3")}
    batches["rl.prompts_per_step"] = cfg.rl.prompts_per_step * cfg.rl.group_size // cfg.rl.micro_batches
    batches["rollout.batch_slots"] = cfg.rollout.batch_slots
    problems = [(key, f"{rows} rows (per microbatch) do not split over the mesh's data x fsdp = {data}x{fsdp} = "
                      f"{shards} batch shards") for key, rows in batches.items() if rows % shards]
    if problems:
        raise ConfigError(problems)
    return data, fsdp, tensor
