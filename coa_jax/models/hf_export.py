"""Export params to a Hugging Face directory (config.json + sharded safetensors + index).

Layers are fetched to the host one tensor at a time and written in shards of at most
`max_shard_bytes`, so export needs host memory for one shard, not for the model.
"""

from __future__ import annotations

import json
import pathlib

import jax
import numpy as np
import safetensors.numpy

from coa_jax.models import hf_config
from coa_jax.models.model_config import ModelConfig
from coa_jax.models.params import Params
from coa_jax.models.weight_map import weight_specs


def export_hf(params: Params, cfg: ModelConfig, out_dir: str | pathlib.Path, *, dtype: str | None = None,
              max_shard_bytes: int = 2 << 30, tokenizer=None) -> pathlib.Path:
    """Write params as a checkpoint that `transformers.AutoModelForCausalLM.from_pretrained` loads."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    np_dtype = np.dtype(jax.numpy.dtype(dtype or cfg.param_dtype))
    shards: list[dict[str, np.ndarray]] = [{}]
    sizes = [0]
    for spec in weight_specs(cfg):
        leaf = params
        for k in spec.path:
            leaf = leaf[k]
        layers = range(cfg.num_layers) if spec.stacked else [None]
        for i in layers:
            ours = np.asarray(jax.device_get(leaf[i] if spec.stacked else leaf))
            tensor = np.ascontiguousarray(spec.to_hf(ours, cfg).astype(np_dtype))
            if sizes[-1] and sizes[-1] + tensor.nbytes > max_shard_bytes:
                shards.append({})
                sizes.append(0)
            shards[-1][spec.hf.format(i=i)] = tensor
            sizes[-1] += tensor.nbytes
    weight_map = {}
    for n, shard in enumerate(shards):
        name = "model.safetensors" if len(shards) == 1 else f"model-{n + 1:05d}-of-{len(shards):05d}.safetensors"
        safetensors.numpy.save_file(shard, str(out / name), metadata={"format": "pt"})
        weight_map.update({k: name for k in shard})
    if len(shards) > 1:
        index = {"metadata": {"total_size": sum(sizes)}, "weight_map": weight_map}
        (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    bos = getattr(tokenizer, "bos_token_id", None)
    eos = getattr(tokenizer, "eos_token_id", None)
    config = hf_config.model_config_to_hf(cfg, torch_dtype=str(np_dtype) if np_dtype != np.float32 else "float32",
                                          bos_token_id=bos, eos_token_id=eos)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(out))
    return out
