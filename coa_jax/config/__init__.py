"""Typed, frozen, validated configuration: schema, config files, `--set` overrides."""

from coa_jax.config.errors import ConfigError
from coa_jax.config.loading import apply_overrides, load_config, validate
from coa_jax.config.schema import Config, MeshConfig, SamplingConfig

__all__ = ["Config", "ConfigError", "MeshConfig", "SamplingConfig", "apply_overrides", "load_config", "validate"]
