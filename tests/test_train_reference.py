"""The GRPO reference model: on device or offloaded to host memory, same weights either way."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from coa_jax.config import MeshConfig
from coa_jax.sharding.mesh import make_mesh
from coa_jax.train.reference import HOST_MEMORY, ReferenceModel
from model_fixtures import TINY, tiny_params


def _params():
    mesh = make_mesh(MeshConfig(data=2, fsdp=4))
    w = jax.device_put(jnp.arange(64.0).reshape(8, 8), NamedSharding(mesh, P("fsdp", None)))
    b = jax.device_put(jnp.ones(8), NamedSharding(mesh, P()))
    return {"w": w, "b": b}


def test_offloaded_reference_lives_in_host_memory_and_comes_back_identical():
    params = _params()
    ref = ReferenceModel(params, offload=True)
    assert ref.memory_kinds() == {HOST_MEMORY} and ref.device_bytes() == 0
    back = ref.params()
    for name in params:
        assert back[name].sharding == params[name].sharding  # the policy's layout, device memory
        np.testing.assert_array_equal(np.asarray(back[name]), np.asarray(params[name]))


def test_reference_is_a_copy_that_survives_donation_of_the_policy():
    for offload in (False, True):
        params = _params()
        expect = np.asarray(params["w"])
        ref = ReferenceModel(params, offload=offload)
        params["w"].delete()  # what donating the train state does to the policy's buffers
        np.testing.assert_array_equal(np.asarray(ref.params()["w"]), expect)
    assert ReferenceModel(_params()).device_bytes() == 64 * 4 + 8 * 4


def test_reference_kept_on_another_device_set_comes_back_in_the_policy_layout():
    from coa_jax.models.params import param_shardings
    from coa_jax.runtime.placement import RolesConfig, place_roles
    from coa_jax.sharding.rules import TRAINING_RULES, Sharder

    meshes = place_roles(MeshConfig(data=-1), RolesConfig(rollout_devices=4, rollout_mesh=MeshConfig(data=4),
                                                          reference="rollout"))
    policy, away = Sharder(meshes.policy, TRAINING_RULES), Sharder(meshes.reference, TRAINING_RULES)
    params = jax.device_put(tiny_params(), param_shardings(TINY, policy))
    ref = ReferenceModel(params, home=param_shardings(TINY, away))
    assert ref.device_bytes() == 0
    stored = {d for leaf in jax.tree.leaves(ref._params) for d in leaf.devices()}
    assert stored == set(meshes.reference.devices.flat) and not stored & set(meshes.policy.devices.flat)
    back = ref.params()
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params)):
        assert a.sharding == b.sharding
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
