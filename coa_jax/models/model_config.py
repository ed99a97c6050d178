"""Decoder hyperparameters: one config covers the Qwen2 and Llama families via switches."""

from __future__ import annotations

import dataclasses

FAMILIES = ("qwen2", "llama")
DTYPES = ("float32", "bfloat16", "float16")
REMAT_POLICIES = ("none", "full", "dots", "dots_with_no_batch_dims")
ROPE_KINDS = ("none", "linear", "llama3")
ATTENTION_IMPLS = ("xla", "cudnn")


@dataclasses.dataclass(frozen=True)
class RopeScaling:
    """RoPE frequency scaling (`rope_scaling` in a Hugging Face config.json)."""

    kind: str = "none"  # none | linear | llama3
    factor: float = 1.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position_embeddings: int = 8192

    def errors(self) -> list[tuple[str, str]]:
        out = []
        if self.kind not in ROPE_KINDS:
            out.append(("kind", f"must be one of {ROPE_KINDS}, got {self.kind!r}"))
        if self.factor <= 0:
            out.append(("factor", f"must be > 0, got {self.factor}"))
        if self.kind == "llama3" and self.high_freq_factor <= self.low_freq_factor:
            out.append(("high_freq_factor", "must exceed low_freq_factor for llama3 scaling"))
        return out


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of a decoder-only transformer (RMSNorm, RoPE, GQA, SwiGLU)."""

    family: str = "qwen2"  # which Hugging Face architecture import/export speaks
    vocab_size: int = 512
    hidden_size: int = 64
    intermediate_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    head_dim: int = 0  # 0: hidden_size // num_heads
    max_position_embeddings: int = 2048
    rope_theta: float = 10000.0
    rope_scaling: RopeScaling = RopeScaling()
    rms_norm_eps: float = 1e-6
    qkv_bias: bool = True  # Qwen2: bias on q/k/v projections; Llama: none
    tie_embeddings: bool = False
    param_dtype: str = "float32"
    dtype: str = "float32"  # compute dtype; softmax, norms' statistics and losses stay in float32
    remat: str = "none"  # activation checkpointing policy per layer
    attention: str = "xla"  # xla: einsum attention; cudnn: jax.nn.dot_product_attention on GPU
    init_std: float = 0.02

    @property
    def resolved_head_dim(self) -> int:
        return self.head_dim or self.hidden_size // self.num_heads

    def errors(self) -> list[tuple[str, str]]:
        out = []
        if self.family not in FAMILIES:
            out.append(("family", f"must be one of {FAMILIES}, got {self.family!r}"))
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads", "num_kv_heads",
                     "max_position_embeddings"):
            if getattr(self, name) <= 0:
                out.append((name, f"must be > 0, got {getattr(self, name)}"))
        if self.num_heads > 0 and self.num_kv_heads > 0 and self.num_heads % self.num_kv_heads:
            out.append(("num_kv_heads", f"must divide num_heads={self.num_heads}, got {self.num_kv_heads}"))
        if not self.head_dim and self.num_heads > 0 and self.hidden_size % self.num_heads:
            out.append(("head_dim", f"is 0 but hidden_size={self.hidden_size} is not divisible by "
                                    f"num_heads={self.num_heads}; set head_dim explicitly"))
        if self.resolved_head_dim % 2:
            out.append(("head_dim", f"must be even for RoPE, got {self.resolved_head_dim}"))
        for name in ("param_dtype", "dtype"):
            if getattr(self, name) not in DTYPES:
                out.append((name, f"must be one of {DTYPES}, got {getattr(self, name)!r}"))
        if self.remat not in REMAT_POLICIES:
            out.append(("remat", f"must be one of {REMAT_POLICIES}, got {self.remat!r}"))
        if self.attention not in ATTENTION_IMPLS:
            out.append(("attention", f"must be one of {ATTENTION_IMPLS}, got {self.attention!r}"))
        if self.rope_theta <= 0:
            out.append(("rope_theta", f"must be > 0, got {self.rope_theta}"))
        return out
