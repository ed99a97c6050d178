"""Hugging Face `config.json` and GGUF metadata <-> ModelConfig."""

from __future__ import annotations

import dataclasses
import json
import pathlib

from coa_jax.models.model_config import ModelConfig, RopeScaling

_ARCHITECTURES = {"qwen2": "Qwen2ForCausalLM", "llama": "LlamaForCausalLM"}


class UnsupportedCheckpoint(ValueError):
    """A checkpoint whose architecture or settings this decoder cannot represent exactly."""


def _rope_from_hf(d: dict) -> tuple[float, RopeScaling]:
    params = d.get("rope_parameters") or {}
    scaling = d.get("rope_scaling") or {}
    theta = float(params.get("rope_theta", d.get("rope_theta", 10000.0)))
    merged = {**params, **scaling}
    kind = merged.get("rope_type", merged.get("type", "default"))
    if kind in ("default", None):
        return theta, RopeScaling()
    if kind not in ("linear", "llama3"):
        raise UnsupportedCheckpoint(f"rope scaling type {kind!r} is not supported (linear, llama3 are)")
    return theta, RopeScaling(
        kind=kind, factor=float(merged.get("factor", 1.0)),
        low_freq_factor=float(merged.get("low_freq_factor", 1.0)),
        high_freq_factor=float(merged.get("high_freq_factor", 4.0)),
        original_max_position_embeddings=int(merged.get("original_max_position_embeddings", 8192)))


def model_config_from_hf(d: dict, **overrides) -> ModelConfig:
    """ModelConfig from a parsed config.json (Qwen2ForCausalLM / LlamaForCausalLM)."""
    family = d.get("model_type")
    if family not in _ARCHITECTURES:
        raise UnsupportedCheckpoint(f"model_type {family!r} is not supported; expected one of {list(_ARCHITECTURES)}")
    if d.get("hidden_act", "silu") != "silu":
        raise UnsupportedCheckpoint(f"hidden_act {d['hidden_act']!r} is not supported (silu is)")
    if family == "qwen2" and d.get("use_sliding_window", False):
        raise UnsupportedCheckpoint("use_sliding_window=true is not supported")
    if family == "llama" and (d.get("attention_bias", False) or d.get("mlp_bias", False)):
        raise UnsupportedCheckpoint("llama attention_bias/mlp_bias are not supported")
    theta, scaling = _rope_from_hf(d)
    heads = int(d["num_attention_heads"])
    head_dim = int(d.get("head_dim") or 0)
    if head_dim == int(d["hidden_size"]) // heads:
        head_dim = 0
    cfg = ModelConfig(
        family=family, vocab_size=int(d["vocab_size"]), hidden_size=int(d["hidden_size"]),
        intermediate_size=int(d["intermediate_size"]), num_layers=int(d["num_hidden_layers"]),
        num_heads=heads, num_kv_heads=int(d.get("num_key_value_heads") or heads), head_dim=head_dim,
        max_position_embeddings=int(d.get("max_position_embeddings", 2048)), rope_theta=theta,
        rope_scaling=scaling, rms_norm_eps=float(d.get("rms_norm_eps", 1e-6)), qkv_bias=(family == "qwen2"),
        tie_embeddings=bool(d.get("tie_word_embeddings", False)))
    return dataclasses.replace(cfg, **overrides)


def model_config_to_hf(cfg: ModelConfig, *, torch_dtype: str = "float32", bos_token_id=None,
                       eos_token_id=None) -> dict:
    """config.json contents that `transformers` loads into the same architecture."""
    d = {
        "architectures": [_ARCHITECTURES[cfg.family]], "model_type": cfg.family,
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size, "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_layers, "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_kv_heads, "head_dim": cfg.resolved_head_dim,
        "max_position_embeddings": cfg.max_position_embeddings, "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta, "tie_word_embeddings": cfg.tie_embeddings, "hidden_act": "silu",
        "torch_dtype": torch_dtype, "dtype": torch_dtype, "attention_dropout": 0.0, "initializer_range": cfg.init_std,
    }
    rope = {"rope_type": "default", "rope_theta": cfg.rope_theta}
    if cfg.rope_scaling.kind != "none":
        rs = cfg.rope_scaling
        scaling = {"rope_type": rs.kind, "factor": rs.factor}
        if rs.kind == "llama3":
            scaling.update(low_freq_factor=rs.low_freq_factor, high_freq_factor=rs.high_freq_factor,
                           original_max_position_embeddings=rs.original_max_position_embeddings)
        d["rope_scaling"] = scaling
        rope.update(scaling)
    d["rope_parameters"] = rope
    if cfg.family == "qwen2":
        d.update(use_sliding_window=False, sliding_window=None, max_window_layers=cfg.num_layers)
    else:
        d.update(attention_bias=False, mlp_bias=False)
    if bos_token_id is not None:
        d["bos_token_id"] = bos_token_id
    if eos_token_id is not None:
        d["eos_token_id"] = eos_token_id
    return d


def read_hf_config(directory: str | pathlib.Path) -> dict:
    path = pathlib.Path(directory) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{directory} has no config.json (not a Hugging Face checkpoint directory)")
    return json.loads(path.read_text())


def model_config_from_gguf(fields: dict, has_output_weight: bool) -> ModelConfig:
    """ModelConfig from GGUF metadata fields (name -> value)."""
    arch = fields["general.architecture"]
    if arch not in _ARCHITECTURES:
        raise UnsupportedCheckpoint(f"GGUF architecture {arch!r} is not supported")

    def get(key, default=None):
        return fields.get(f"{arch}.{key}", default)

    heads = int(get("attention.head_count"))
    hidden = int(get("embedding_length"))
    rope_dim = int(get("rope.dimension_count", hidden // heads))
    vocab = int(get("vocab_size", 0) or len(fields.get("tokenizer.ggml.tokens", [])))
    scaling = RopeScaling()
    if get("rope.scaling.type") == "linear":
        scaling = RopeScaling(kind="linear", factor=float(get("rope.scaling.factor")))
    return ModelConfig(
        family=arch, vocab_size=vocab, hidden_size=hidden, intermediate_size=int(get("feed_forward_length")),
        num_layers=int(get("block_count")), num_heads=heads, num_kv_heads=int(get("attention.head_count_kv", heads)),
        head_dim=0 if rope_dim == hidden // heads else rope_dim,
        max_position_embeddings=int(get("context_length", 2048)), rope_theta=float(get("rope.freq_base", 10000.0)),
        rope_scaling=scaling, rms_norm_eps=float(get("attention.layer_norm_rms_epsilon", 1e-6)),
        qkv_bias=(arch == "qwen2"), tie_embeddings=not has_output_weight)
