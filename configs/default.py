"""The embedded default: the whole AutoCoA recipe on the synthetic world, on a CPU, offline.

Run:    python -m coa_jax generate --config configs/default.py --checkpoint RUN/.. --prompt ...
Tiny:   --config configs/default.py:tiny   (seconds; what the tests use)
"""

import dataclasses

from coa_jax.config import Config, ConfigError, MeshConfig, SamplingConfig
from coa_jax.models.model_config import ModelConfig

VARIANTS = (None, "tiny")


def get_config(variant: str | None = None) -> Config:
    # A Qwen2-architecture model small enough to train on 2 CPU cores in minutes; the vocabulary
    # size matches the embedded world's tokenizer.
    model = ModelConfig(family="qwen2", vocab_size=2048, hidden_size=128, intermediate_size=384, num_layers=4,
                        num_heads=4, num_kv_heads=2, max_position_embeddings=2048, rope_theta=10000.0,
                        qkv_bias=True, tie_embeddings=True)
    cfg = Config(name="default", seed=0, model=model, mesh=MeshConfig(data=-1),
                 sampling=SamplingConfig(temperature=0.6, max_new_tokens=256))
    if variant == "tiny":
        return dataclasses.replace(
            cfg, name="default-tiny",
            model=dataclasses.replace(model, hidden_size=64, intermediate_size=128, num_layers=2),
            sampling=dataclasses.replace(cfg.sampling, max_new_tokens=64))
    if variant is not None:
        raise ConfigError([("variant", f"unknown variant {variant!r}; choose from {VARIANTS}")])
    return cfg
