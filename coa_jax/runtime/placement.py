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

Several processes (a pod): every process samples its own rows on its own devices (a local
rollout mesh, `roles.rollout_mesh` over `jax.local_devices()`), so the host tool loop is never a
single-host bottleneck; policy and reference span the pod. After each update the weights are
all-gathered once on the pod mesh and each process keeps its local copies (`WeightSync`).
"""

from __future__ import annotations

import dataclasses

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

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
    if devices is None and jax.process_count() > 1:
        return _pod_roles(mesh, roles)
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


def _pod_roles(mesh: MeshConfig, roles: RolesConfig) -> RoleMeshes:
    """Policy and reference over the whole pod; the rollout on this process's devices."""
    if roles.rollout_devices:
        raise ConfigError([("roles.rollout_devices", f"must be 0 in a run of {jax.process_count()} processes: "
                                                     "there every process samples its own rows on its own devices "
                                                     "(shape them with roles.rollout_mesh)")])
    if roles.reference == "rollout":
        raise ConfigError([("roles.reference", "'rollout' needs a single process; on a pod the reference is "
                                               "sharded like the policy")])
    policy = make_mesh(mesh, list(jax.devices()))
    try:
        rollout = make_mesh(roles.rollout_mesh, list(jax.local_devices()))
    except ConfigError as err:
        raise ConfigError([(f"roles.rollout_{k}", m) for k, m in err.problems]) from None
    return RoleMeshes(policy, policy, rollout)


class WeightSync:
    """`sync(params)`: the trainer's weights as arrays the sampler on `mesh` can take.

    In one process the weights pass through (the sampler's own `device_put` reshards them). On a
    pod, where `mesh` is this process's own devices, one jitted all-gather replicates every weight
    across the pod mesh, and each process keeps the copies on its devices.
    """

    def __init__(self, param_shardings, mesh: Mesh):
        self.pod = jax.process_count() > 1
        if self.pod:
            whole = jax.tree.map(lambda s: NamedSharding(s.mesh, PartitionSpec()), param_shardings)
            self._gather = jax.jit(lambda p: p, out_shardings=whole)
            self._local = NamedSharding(mesh, PartitionSpec())
            self._devices = set(mesh.devices.flat)

    def __call__(self, params):
        if not self.pod:
            return params
        full = self._gather(params)

        def keep(x):
            mine = [s.data for s in x.addressable_shards if s.device in self._devices]
            return jax.make_array_from_single_device_arrays(x.shape, self._local, mine)

        return jax.tree.map(keep, full)


def sync_weights(params, target_shardings):
    """The trainer's weights in the sampler's layout (a new copy; the trainer's stay as they are)."""
    return jax.device_put(params, target_shardings)
