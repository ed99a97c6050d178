"""Model shapes the benchmarks run (random weights), by name.

    world         the embedded default model (configs/default.py)
    smollm2-135m  SmolLM2-135M (Llama architecture)
    qwen2-1.5b    Qwen2 1.5B (R1-Distill-Qwen-1.5B's architecture), for GPUs
    qwen2-7b      Qwen2 7B (R1-Distill-Qwen-7B's, the paper's model), for GPUs
"""

from __future__ import annotations

import dataclasses
import os

from coa_jax.config.loading import load_config
from coa_jax.models.model_config import ModelConfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = {
    "world": "configs/default.py",
    "smollm2-135m": "configs/smollm2_135m.py",
    "qwen2-1.5b": "configs/r1_distill_qwen_1_5b.py",
    "qwen2-7b": "configs/r1_distill_qwen_7b.py",
}


def model_shape(name: str, *, dtype: str = "float32", remat: str = "none", attention: str = "xla") -> ModelConfig:
    """The ModelConfig of a named shape, computing in `dtype` (parameters stay float32)."""
    if name not in CONFIGS:
        raise ValueError(f"unknown model shape {name!r}; choose from {sorted(CONFIGS)}")
    cfg = load_config(os.path.join(ROOT, CONFIGS[name])).model
    return dataclasses.replace(cfg, dtype=dtype, remat=remat, attention=attention)


def matmul_params(cfg: ModelConfig) -> int:
    """Parameters used in a matmul per token (layers + output head; the embedding lookup is not)."""
    e, f, d = cfg.hidden_size, cfg.intermediate_size, cfg.resolved_head_dim
    attn = e * (cfg.num_heads + 2 * cfg.num_kv_heads) * d + cfg.num_heads * d * e
    return cfg.num_layers * (attn + 3 * e * f) + e * cfg.vocab_size


def attention_flops(cfg: ModelConfig, visible_keys: float) -> float:
    """Forward FLOPs of attention scores and weighted values for one query seeing `visible_keys`."""
    return 4.0 * cfg.num_layers * cfg.num_heads * cfg.resolved_head_dim * visible_keys
