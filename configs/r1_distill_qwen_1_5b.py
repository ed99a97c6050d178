"""DeepSeek-R1-Distill-Qwen-1.5B (the paper's model family, 1.5B):
the paper's recipe (configs/r1_distill_qwen_7b.py) with this model.

Fit:    python launch/aot_check.py --config configs/r1_distill_qwen_1_5b.py:v5p-16 --topology v5p-16
Run:    python -m coa_jax sft --stage 1 --config configs/r1_distill_qwen_1_5b.py:gpu8 --data DIR --out runs/sft1
        (then --stage 2, 3 and rl, each with --init the previous run)
Tiny:   --config configs/r1_distill_qwen_1_5b.py:tiny   (the recipe shrunk to the embedded world, CPU)

Weights: `init` is a Hugging Face directory
(`huggingface-cli download deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B --local-dir checkpoints/DeepSeek-R1-Distill-Qwen-1.5B`);
its config.json wins over `MODEL`, which only describes it for the AOT check.
Variants are meshes: v5p-16 (default), v4-32, gpu8 (see the paper config); on v4-32 the tensor axis
is 2, not 4: the 2 KV heads split at most 2 ways, and a 4-way axis would replicate the KV cache.
"""

import pathlib

from coa_jax.config import Config, ConfigError, MeshConfig
from coa_jax.config.loading import load_module
from coa_jax.models.model_config import ModelConfig

VARIANTS = (None, "v5p-16", "v4-32", "gpu8", "tiny")
MESHES = {"v4-32": (MeshConfig(data=1, fsdp=8, tensor=2), 4, 30, 240)}  # (mesh, SFT / RL microbatches, slots)

MODEL = ModelConfig(family="qwen2", vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_layers=28,
                    num_heads=12, num_kv_heads=2, max_position_embeddings=131072, rope_theta=10000.0,
                    rms_norm_eps=1e-6, qkv_bias=True, tie_embeddings=False,
                    param_dtype="float32", dtype="bfloat16", remat="full")


def get_config(variant: str | None = None) -> Config:
    paper = _paper_config()
    if variant == "tiny":
        return paper.tiny_recipe("r1-distill-qwen-1.5b-tiny")
    if variant not in VARIANTS:
        raise ConfigError([("variant", f"unknown variant {variant!r}; choose from {VARIANTS}")])
    return paper.paper_recipe("r1-distill-qwen-1.5b", MODEL, "checkpoints/DeepSeek-R1-Distill-Qwen-1.5B",
                              variant or "v5p-16", MESHES)


def _paper_config():
    return load_module(pathlib.Path(__file__).with_name("r1_distill_qwen_7b.py"))
