"""Qwen2.5-7B-Instruct (a non-reasoning 7B start):
the paper's recipe (configs/r1_distill_qwen_7b.py) with this model.

Fit:    python launch/aot_check.py --config configs/qwen2_5_7b_instruct.py:v5p-16 --topology v5p-16
Run:    python -m coa_jax sft --stage 1 --config configs/qwen2_5_7b_instruct.py:gpu8 --data DIR --out runs/sft1
        (then --stage 2, 3 and rl, each with --init the previous run)
Tiny:   --config configs/qwen2_5_7b_instruct.py:tiny   (the recipe shrunk to the embedded world, CPU)

Weights: `init` is a Hugging Face directory
(`huggingface-cli download Qwen/Qwen2.5-7B-Instruct --local-dir checkpoints/Qwen2.5-7B-Instruct`);
its config.json wins over `MODEL`, which only describes it for the AOT check.
Variants are meshes: v5p-16 (default), v4-32, gpu8 (see the paper config).
"""

import pathlib

from coa_jax.config import Config, ConfigError
from coa_jax.config.loading import load_module
from coa_jax.models.model_config import ModelConfig

VARIANTS = (None, "v5p-16", "v4-32", "gpu8", "tiny")

MODEL = ModelConfig(family="qwen2", vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_layers=28,
                    num_heads=28, num_kv_heads=4, max_position_embeddings=32768, rope_theta=1000000.0,
                    rms_norm_eps=1e-6, qkv_bias=True, tie_embeddings=False,
                    param_dtype="float32", dtype="bfloat16", remat="full")


def get_config(variant: str | None = None) -> Config:
    paper = _paper_config()
    if variant == "tiny":
        return paper.tiny_recipe("qwen2.5-7b-instruct-tiny")
    if variant not in VARIANTS:
        raise ConfigError([("variant", f"unknown variant {variant!r}; choose from {VARIANTS}")])
    return paper.paper_recipe("qwen2.5-7b-instruct", MODEL, "checkpoints/Qwen2.5-7B-Instruct", variant or "v5p-16")


def _paper_config():
    return load_module(pathlib.Path(__file__).with_name("r1_distill_qwen_7b.py"))
