"""Roles on one mesh or on separate device sets; the sampler's weights equal the trainer's after sync."""

import jax
import numpy as np
import pytest

from coa_jax.config.errors import ConfigError
from coa_jax.config.schema import MeshConfig
from coa_jax.models.model_config import ModelConfig
from coa_jax.models.params import init_params, param_shardings
from coa_jax.runtime.placement import RolesConfig, place_roles, sync_weights
from coa_jax.sharding.rules import SAMPLING_RULES, TRAINING_RULES, Sharder

MODEL = ModelConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4, num_kv_heads=2)


def _update(params):
    """Stands in for an optimizer step: new weights in the trainer's layout."""
    return jax.jit(lambda p: jax.tree.map(lambda x: x * 0.5 + 0.25, p))(params)


SEPARATE = RolesConfig(rollout_devices=4, rollout_mesh=MeshConfig(data=2, tensor=2))


@pytest.mark.parametrize("roles", [RolesConfig(), SEPARATE], ids=["one-mesh", "separate-devices"])
def test_sampler_weights_equal_trainer_weights_after_sync(roles):
    meshes = place_roles(MeshConfig(data=1, fsdp=-1), roles)
    trainer, sampler = Sharder(meshes.policy, TRAINING_RULES), Sharder(meshes.rollout, SAMPLING_RULES)
    params = _update(init_params(MODEL, trainer, jax.random.key(0)))
    synced = sync_weights(params, param_shardings(MODEL, sampler))
    rollout_devices = set(meshes.rollout.devices.flat)
    for (path, a), b, want in zip(jax.tree_util.tree_leaves_with_path(params), jax.tree.leaves(synced),
                                  jax.tree.leaves(param_shardings(MODEL, sampler))):
        name = jax.tree_util.keystr(path)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)
        assert b.sharding == want and set(b.devices()) <= rollout_devices, name
    if roles.rollout_devices:
        assert not meshes.shared and not rollout_devices & set(meshes.policy.devices.flat)
        assert meshes.reference is meshes.policy and dict(meshes.rollout.shape) == {"data": 2, "fsdp": 1, "tensor": 2}
    else:
        assert meshes.shared


def test_bad_splits_name_the_setting():
    with pytest.raises(ConfigError, match="roles.rollout_devices"):
        place_roles(MeshConfig(), RolesConfig(rollout_devices=8))
    with pytest.raises(ConfigError, match="roles.rollout_mesh"):
        place_roles(MeshConfig(), RolesConfig(rollout_devices=4, rollout_mesh=MeshConfig(data=3)))
    with pytest.raises(ConfigError, match="roles.reference"):
        place_roles(MeshConfig(), RolesConfig(reference="elsewhere"))
