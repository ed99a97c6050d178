"""Random tiny coa_jax models for tests that need no Hugging Face checkpoint."""

import jax

from coa_jax.config.schema import MeshConfig
from coa_jax.models.model_config import ModelConfig
from coa_jax.models.params import init_params
from coa_jax.sharding.mesh import make_mesh
from coa_jax.sharding.rules import SAMPLING_RULES, TRAINING_RULES, Sharder

# Divisible by a 2x2x2 mesh on every sharded dim (heads, kv heads, mlp, vocab, embed).
TINY = ModelConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4, num_kv_heads=2,
                   max_position_embeddings=256, init_std=0.1)


def single_device_sharder(role: str = "training") -> Sharder:
    rules = TRAINING_RULES if role == "training" else SAMPLING_RULES
    return Sharder(make_mesh(MeshConfig(data=1), jax.devices()[:1]), rules)


def mesh_sharder(data: int, fsdp: int, tensor: int, role: str = "training") -> Sharder:
    rules = TRAINING_RULES if role == "training" else SAMPLING_RULES
    return Sharder(make_mesh(MeshConfig(data=data, fsdp=fsdp, tensor=tensor)), rules)


def tiny_params(cfg: ModelConfig = TINY, seed: int = 0, role: str = "training"):
    return init_params(cfg, single_device_sharder(role), jax.random.key(seed))
