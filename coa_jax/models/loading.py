"""Open any supported checkpoint (HF directory, GGUF file) into (ModelConfig, sharded params)."""

from __future__ import annotations

import pathlib

from coa_jax.models import hf_import
from coa_jax.models.model_config import ModelConfig
from coa_jax.models.params import Params
from coa_jax.sharding.rules import Sharder


def load_model(path: str | pathlib.Path, sharder: Sharder, **overrides) -> tuple[ModelConfig, Params]:
    """Read the architecture and weights at `path`; overrides (dtype, param_dtype, remat) apply on top."""
    cfg = hf_import.read_model_config(path, **overrides)
    return cfg, hf_import.load_params(path, cfg, sharder)
