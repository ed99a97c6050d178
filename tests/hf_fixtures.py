"""Tiny random Hugging Face checkpoints (Qwen2 and Llama variants) written by transformers itself."""

from __future__ import annotations

import pathlib

import torch
import transformers

# (name, family, overrides): GQA ratios, tied/untied, bias on/off, explicit head_dim, llama3 rope.
TINY_VARIANTS = [
    ("qwen2_gqa2_untied", "qwen2", dict(num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)),
    ("qwen2_mha_tied", "qwen2", dict(num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=True)),
    ("llama_gqa4_tied", "llama", dict(num_attention_heads=8, num_key_value_heads=2, tie_word_embeddings=True,
                                      head_dim=16)),
    ("llama3_rope_untied", "llama", dict(num_attention_heads=4, num_key_value_heads=1, tie_word_embeddings=False,
                                         rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                       "high_freq_factor": 4.0,
                                                       "original_max_position_embeddings": 64})),
]


def make_tiny_hf(directory: pathlib.Path, family: str, seed: int = 0, **overrides) -> transformers.PreTrainedModel:
    """Write a random tiny model to `directory` and return the PyTorch model (float32, eval)."""
    base = dict(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=2, max_position_embeddings=256,
                rms_norm_eps=1e-6, rope_theta=10000.0)
    base.update(overrides)
    if family == "qwen2":
        config = transformers.Qwen2Config(**base)
    else:
        config = transformers.LlamaConfig(**base)
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32)
    with torch.no_grad():  # random init of HF leaves norms at 1 and biases at 0: perturb to test them
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.add_(0.1 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn_like(p))
    model.eval()
    model.save_pretrained(directory, safe_serialization=True)
    return model
