"""Read checkpoint tensors one at a time, in Hugging Face naming and layout.

`SafetensorsSource` memory-maps a directory's `*.safetensors` files (single file or sharded with
an index); `GGUFSource` dequantizes one GGUF tensor per request. Neither reads the whole model.
"""

from __future__ import annotations

import functools
import json
import pathlib

import numpy as np
import safetensors

from coa_jax.models.model_config import ModelConfig
from coa_jax.models.weight_map import unpermute_llama_qk, weight_specs


class CheckpointError(ValueError):
    """A checkpoint file that is missing, unsafe or inconsistent; the message names the file."""


class SafetensorsSource:
    """Tensors of a Hugging Face checkpoint directory."""

    def __init__(self, directory: str | pathlib.Path):
        self.dir = pathlib.Path(directory)
        index = self.dir / "model.safetensors.index.json"
        if index.is_file():
            weight_map = json.loads(index.read_text())["weight_map"]
        else:
            files = sorted(self.dir.glob("*.safetensors"))
            if not files:
                pickles = sorted(p.name for p in self.dir.glob("*.bin")) + sorted(p.name for p in self.dir.glob("*.pt"))
                hint = f" (found {pickles}: pickle checkpoints are refused; convert them to safetensors)" if pickles else ""
                raise CheckpointError(f"{self.dir}: no *.safetensors files{hint}")
            weight_map = {}
            for f in files:
                with safetensors.safe_open(f, framework="numpy") as h:
                    weight_map.update({k: f.name for k in h.keys()})
        self.weight_map: dict[str, str] = weight_map
        self._handles: dict[str, object] = {}

    def has(self, name: str) -> bool:
        return name in self.weight_map

    def get(self, name: str) -> np.ndarray:
        if name not in self.weight_map:
            raise CheckpointError(f"{self.dir}: tensor {name!r} is missing")
        file = self.weight_map[name]
        if file not in self._handles:
            path = self.dir / file
            if not path.is_file():
                raise CheckpointError(f"{path}: listed in the index but missing")
            self._handles[file] = safetensors.safe_open(path, framework="numpy")
        return self._handles[file].get_tensor(name)


@functools.lru_cache(maxsize=2)
def _gguf_reader(path: str, mtime_ns: int):
    import gguf

    return gguf.GGUFReader(path)


def gguf_reader(path: str | pathlib.Path):
    """A memory-mapped GGUF reader, shared between metadata and tensor reads (parsing is slow)."""
    p = pathlib.Path(path).resolve()
    return _gguf_reader(str(p), p.stat().st_mtime_ns)


class GGUFSource:
    """Tensors of a GGUF file, dequantized to float32 and renamed to Hugging Face names."""

    def __init__(self, path: str | pathlib.Path, cfg: ModelConfig):
        import gguf

        self.path = pathlib.Path(path)
        self.cfg = cfg
        self.reader = gguf_reader(self.path)
        self._tensors = {t.name: t for t in self.reader.tensors}
        self._names: dict[str, tuple[str, str]] = {}
        for spec in weight_specs(cfg):
            layers = range(cfg.num_layers) if spec.stacked else [None]
            for i in layers:
                self._names[spec.hf.format(i=i)] = (spec.gguf.format(i=i), spec.qk_permuted)

    def has(self, name: str) -> bool:
        return name in self._names and self._names[name][0] in self._tensors

    def get(self, name: str) -> np.ndarray:
        import gguf

        if not self.has(name):
            raise CheckpointError(f"{self.path}: tensor for {name!r} is missing")
        gname, permuted = self._names[name]
        t = self._tensors[gname]
        w = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
        if permuted:
            w = unpermute_llama_qk(w, self.cfg.num_heads if permuted == "q" else self.cfg.num_kv_heads)
        return w


def read_gguf_fields(path: str | pathlib.Path) -> tuple[dict, bool]:
    """(metadata name -> value, whether an untied `output.weight` exists)."""
    reader = gguf_reader(path)
    fields = {}
    for key, field in reader.fields.items():
        if key in ("tokenizer.ggml.merges", "tokenizer.ggml.token_type"):
            continue
        try:
            fields[key] = field.contents()
        except Exception:  # some array fields have no scalar view; they are not needed here
            continue
    return fields, any(t.name == "output.weight" for t in reader.tensors)
