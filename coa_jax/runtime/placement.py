"""Role placement: policy, reference and rollout on one mesh, or the rollout on its own devices.

    meshes = place_roles(cfg.mesh, RolesConfig(rollout_devices=4, rollout_mesh=MeshConfig(tensor=2)))
    trainer = Sharder(meshes.policy, TRAINING_RULES)
    sampler = Sharder(meshes.rollout, SAMPLING_RULES)
    ...after each update:
    sampler_params = sync_weights(state.params, param_shardings(model_cfg, sampler))

One mesh (the default): every role sees all devices; sync only re-lays the weights from the
training layout (FSDP) to the sampling layout (tensor-parallel only). Separate device sets: the
rollout takes the last `rollout_devices` devices (on a pod: the last hosts), policy and reference
the rest, so generation and the update can overlap; sync is then a cross-mesh copy.
"""

from __future__ import annotations

import dataclasses

import jax
from jax.sharding import Mesh

from coa_jax.config.errors import ConfigError
from coa_jax.config.schema import REFERENCE_PLACES, MeshConfig, RolesConfig  # noqa: F401 - re-exported
from coa_jax.sharding.mesh import make_mesh

@dataclasses.dataclass(frozen=True)
class RoleMeshes:
    policy: Mesh
    reference: Mesh
    rollout: Mesh

    @property
    def shared(self) -> bool:
        return self.policy is self.rollout


def place_roles(mesh: MeshConfig, roles: RolesConfig, devices: list | None = None) -> RoleMeshes:
    """The meshes of the three roles over `devices` (default: every device of every process).

    Raises:
      ConfigError: naming `roles.*` / `mesh.*` when the device split or a mesh shape cannot work.
    """
    problems = [(f"roles.{k}", m) for k, m in roles.errors()]
    problems += [(f"roles.rollout_mesh.{k}", m) for k, m in roles.rollout_mesh.errors()]
    if problems:
        raise ConfigError(problems)
    devices = list(jax.devices()) if devices is None else list(devices)
    if roles.rollout_devices == 0:
        one = make_mesh(mesh, devices)
        return RoleMeshes(one, one, one)
    if roles.rollout_devices >= len(devices):
        raise ConfigError([("roles.rollout_devices", f"{roles.rollout_devices} leaves no device for the policy "
                                                     f"({len(devices)} devices)")])
    split = len(devices) - roles.rollout_devices
    policy = make_mesh(mesh, devices[:split])
    try:
        rollout = make_mesh(roles.rollout_mesh, devices[split:])
    except ConfigError as err:
        raise ConfigError([(f"roles.rollout_{k}", m) for k, m in err.problems]) from None
    return RoleMeshes(policy, rollout if roles.reference == "rollout" else policy, rollout)


def sync_weights(params, target_shardings):
    """The trainer's weights in the sampler's layout (a new copy; the trainer's stay as they are)."""
    return jax.device_put(params, target_shardings)
