"""Where each parameter lives in a Hugging Face checkpoint and in a GGUF file, and how to convert.

Hugging Face layouts: linear weights are [out, in]; ours are [in, out] with heads split out
(q: [E, H, D], o: [H, D, E]). GGUF stores the same [out, in] matrices, except that llama.cpp
permutes Llama's q/k rows into an interleaved RoPE layout, which `unpermute_llama_qk` undoes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from coa_jax.models.model_config import ModelConfig

Convert = Callable[[np.ndarray, ModelConfig], np.ndarray]


@dataclasses.dataclass(frozen=True)
class WeightSpec:
    path: tuple[str, ...]  # path in our params tree
    hf: str  # Hugging Face tensor name; `{i}` is the layer index
    gguf: str  # GGUF tensor name
    to_ours: Convert  # one (layer's) HF tensor -> our layout
    to_hf: Convert  # our layout -> HF tensor
    stacked: bool = True  # has a leading layers axis in our tree
    qk_permuted: str = ""  # "q"/"k": GGUF Llama rows are RoPE-permuted


def _heads(cfg: ModelConfig, kind: str) -> int:
    return cfg.num_heads if kind == "q" else cfg.num_kv_heads


def _proj_in(kind: str) -> tuple[Convert, Convert]:
    def to_ours(w, cfg):
        return w.T.reshape(cfg.hidden_size, _heads(cfg, kind), cfg.resolved_head_dim)

    def to_hf(w, cfg):
        return w.reshape(cfg.hidden_size, -1).T

    return to_ours, to_hf


def _bias(kind: str) -> tuple[Convert, Convert]:
    return (lambda b, cfg: b.reshape(_heads(cfg, kind), cfg.resolved_head_dim)), (lambda b, cfg: b.reshape(-1))


def _same(w, cfg):
    return w


def _transpose(w, cfg):
    return w.T


def _o_to_ours(w, cfg):
    return w.T.reshape(cfg.num_heads, cfg.resolved_head_dim, cfg.hidden_size)


def _o_to_hf(w, cfg):
    return w.reshape(-1, cfg.hidden_size).T


def weight_specs(cfg: ModelConfig) -> list[WeightSpec]:
    """Every tensor of the checkpoint, in a stable order."""
    specs = [WeightSpec(("embedding",), "model.embed_tokens.weight", "token_embd.weight", _same, _same, False)]
    for kind in ("q", "k", "v"):
        to_ours, to_hf = _proj_in(kind)
        permuted = kind if (cfg.family == "llama" and kind != "v") else ""
        specs.append(WeightSpec(("layers", "attn", f"{kind}_kernel"), f"model.layers.{{i}}.self_attn.{kind}_proj.weight",
                                f"blk.{{i}}.attn_{kind}.weight", to_ours, to_hf, qk_permuted=permuted))
        if cfg.qkv_bias:
            b_ours, b_hf = _bias(kind)
            specs.append(WeightSpec(("layers", "attn", f"{kind}_bias"), f"model.layers.{{i}}.self_attn.{kind}_proj.bias",
                                    f"blk.{{i}}.attn_{kind}.bias", b_ours, b_hf, qk_permuted=permuted))
    specs += [
        WeightSpec(("layers", "attn", "o_kernel"), "model.layers.{i}.self_attn.o_proj.weight",
                   "blk.{i}.attn_output.weight", _o_to_ours, _o_to_hf),
        WeightSpec(("layers", "attn_norm", "scale"), "model.layers.{i}.input_layernorm.weight",
                   "blk.{i}.attn_norm.weight", _same, _same),
        WeightSpec(("layers", "mlp_norm", "scale"), "model.layers.{i}.post_attention_layernorm.weight",
                   "blk.{i}.ffn_norm.weight", _same, _same),
        WeightSpec(("layers", "mlp", "gate_kernel"), "model.layers.{i}.mlp.gate_proj.weight",
                   "blk.{i}.ffn_gate.weight", _transpose, _transpose),
        WeightSpec(("layers", "mlp", "up_kernel"), "model.layers.{i}.mlp.up_proj.weight",
                   "blk.{i}.ffn_up.weight", _transpose, _transpose),
        WeightSpec(("layers", "mlp", "down_kernel"), "model.layers.{i}.mlp.down_proj.weight",
                   "blk.{i}.ffn_down.weight", _transpose, _transpose),
        WeightSpec(("final_norm", "scale"), "model.norm.weight", "output_norm.weight", _same, _same, False),
    ]
    if not cfg.tie_embeddings:
        specs.append(WeightSpec(("lm_head",), "lm_head.weight", "output.weight", _transpose, _transpose, False))
    return specs


def unpermute_llama_qk(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Undo llama.cpp's interleaving of RoPE halves in q/k rows (weights [out, in] or biases [out])."""
    shape = w.shape
    return w.reshape(n_heads, shape[0] // n_heads // 2, 2, *shape[1:]).swapaxes(1, 2).reshape(shape)
