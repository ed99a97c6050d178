"""Import Hugging Face checkpoints (safetensors directory or GGUF file) into sharded params.

Tensors are read one at a time: each checkpoint tensor is converted to our layout, then only the
slice each local device owns is copied to that device; the host never holds a second copy of the
model, only one tensor. Works for any mesh, incl. multi-host (each process fills its devices).
"""

from __future__ import annotations

import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from coa_jax.models import hf_config
from coa_jax.models.model_config import ModelConfig
from coa_jax.models.params import Params, abstract_params, param_shardings
from coa_jax.models.tensor_sources import CheckpointError, GGUFSource, SafetensorsSource, read_gguf_fields
from coa_jax.models.weight_map import weight_specs
from coa_jax.sharding.rules import Sharder


def is_gguf(path: str | pathlib.Path) -> bool:
    return str(path).endswith(".gguf") and pathlib.Path(path).is_file()


def read_model_config(path: str | pathlib.Path, **overrides) -> ModelConfig:
    """The ModelConfig of a HF directory or GGUF file; overrides set dtype, remat, ..."""
    if is_gguf(path):
        fields, has_output = read_gguf_fields(path)
        return dataclasses.replace(hf_config.model_config_from_gguf(fields, has_output), **overrides)
    return hf_config.model_config_from_hf(hf_config.read_hf_config(path), **overrides)


def open_source(path: str | pathlib.Path, cfg: ModelConfig):
    if is_gguf(path):
        return GGUFSource(path, cfg)
    if pathlib.Path(path).is_dir():
        return SafetensorsSource(path)
    raise CheckpointError(f"{path}: neither a Hugging Face directory nor a .gguf file")


def load_params(path: str | pathlib.Path, cfg: ModelConfig, sharder: Sharder) -> Params:
    """Read every tensor of the checkpoint at `path` into params sharded by `sharder`.

    Raises:
      CheckpointError: a missing tensor or a shape that does not match `cfg` (names the tensor).
    """
    source = open_source(path, cfg)
    shapes = abstract_params(cfg)
    shardings = param_shardings(cfg, sharder)
    out: dict = {}
    for spec in weight_specs(cfg):
        shape = _get(shapes, spec.path)
        leaf = _load_leaf(spec, source, cfg, shape.shape, shape.dtype, _get(shardings, spec.path))
        _set(out, spec.path, leaf)
    return out


def _load_leaf(spec, source, cfg: ModelConfig, shape, dtype, sharding) -> jax.Array:
    index_map = sharding.addressable_devices_indices_map(shape)
    layers = range(cfg.num_layers) if spec.stacked else [None]
    pieces: dict = {d: [] for d in index_map}
    for i in layers:
        name = spec.hf.format(i=i)
        tensor = np.asarray(spec.to_ours(source.get(name), cfg)).astype(dtype)
        want = shape[1:] if spec.stacked else shape
        if tensor.shape != tuple(want):
            raise CheckpointError(f"tensor {name!r} has shape {tensor.shape} in our layout, expected {tuple(want)}")
        for device, index in index_map.items():
            if spec.stacked:
                if i not in range(cfg.num_layers)[index[0]]:
                    continue
                pieces[device].append(jax.device_put(tensor[None][(slice(None),) + tuple(index[1:])], device))
            else:
                pieces[device].append(jax.device_put(tensor[tuple(index)], device))
    arrays = [p[0] if len(p) == 1 else jnp.concatenate(p, axis=0) for p in pieces.values()]
    return jax.make_array_from_single_device_arrays(shape, sharding, arrays)


def _get(tree, path):
    for k in path:
        tree = tree[k]
    return tree


def _set(tree, path, value):
    for k in path[:-1]:
        tree = tree.setdefault(k, {})
    tree[path[-1]] = value
