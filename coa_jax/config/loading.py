"""Config files, `--set key=value` overrides and validation.

A config file is Python (`configs/*.py`) with `get_config(variant: str | None) -> Config`;
`path.py:variant` picks a variant (e.g. `configs/default.py:tiny`). Overrides are the one
command-line channel: `--set model.num_layers=4 --set sampling.temperature=0.6`. Values are
parsed according to the field's declared type, so a typo or a wrong type fails before anything
compiles, naming the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import json
import pathlib
import types
import typing
from collections.abc import Iterable

from coa_jax.config.errors import ConfigError
from coa_jax.config.schema import Config


def load_module(path: str | pathlib.Path, prefix: str = "coa_jax_config_"):
    """Execute a Python config file (not on sys.path) and return it as a module."""
    path = pathlib.Path(path)
    mod_spec = importlib.util.spec_from_file_location(f"{prefix}{path.stem}", path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module


def load_config(spec: str | None, overrides: Iterable[str] = ()) -> Config:
    """Load `path.py[:variant]` (or the default Config when spec is None), apply overrides, validate."""
    if spec is None:
        cfg = Config()
    else:
        path, _, variant = spec.partition(":")
        file = pathlib.Path(path)
        if not file.is_file():
            raise ConfigError(f"config file not found: {path}")
        module = load_module(file)
        if not hasattr(module, "get_config"):
            raise ConfigError(f"{path} defines no get_config(variant)")
        cfg = module.get_config(variant or None)
        if not isinstance(cfg, Config):
            raise ConfigError(f"{path}: get_config returned {type(cfg).__name__}, not Config")
    cfg = apply_overrides(cfg, overrides)
    validate(cfg)
    return cfg


def apply_overrides(cfg, overrides: Iterable[str]):
    """Return `cfg` with each `dotted.key=value` override applied (typed by the schema)."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError([(key, "override must look like key=value")])
        cfg = _replace_path(cfg, key.strip().split("."), raw.strip(), key.strip())
    return cfg


def validate(cfg) -> None:
    """Raise ConfigError listing every problem in the tree, each with its full dotted key."""
    problems = list(_walk_errors(cfg, ""))
    if problems:
        raise ConfigError(problems)


def to_dict(cfg) -> dict:
    """A JSON-ready dict of the config (for run directories and checkpoint compatibility checks)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def from_dict(cls, data: dict):
    """Inverse of to_dict; unknown keys fail naming the key."""
    kwargs = {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        if key not in fields:
            raise ConfigError([(key, f"unknown key for {cls.__name__}")])
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = from_dict(tp, value)
        elif typing.get_origin(tp) is tuple:
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = value
    return cls(**kwargs)


def _walk_errors(node, prefix: str):
    for key, msg in node.errors():
        yield (f"{prefix}{key}", msg)
    for f in dataclasses.fields(node):
        child = getattr(node, f.name)
        if dataclasses.is_dataclass(child) and not isinstance(child, type):
            yield from _walk_errors(child, f"{prefix}{f.name}.")


def _replace_path(node, parts: list[str], raw: str, full_key: str):
    if not dataclasses.is_dataclass(node):
        raise ConfigError([(full_key, f"{'.'.join(parts)} is not a config section")])
    fields = {f.name: f for f in dataclasses.fields(node)}
    head = parts[0]
    if head not in fields:
        close = difflib.get_close_matches(head, fields, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError([(full_key, f"unknown key {head!r} in {type(node).__name__}{hint}")])
    value = getattr(node, head)
    if len(parts) > 1:
        return dataclasses.replace(node, **{head: _replace_path(value, parts[1:], raw, full_key)})
    tp = typing.get_type_hints(type(node))[head]
    return dataclasses.replace(node, **{head: _parse_value(tp, raw, full_key)})


def _parse_value(tp, raw: str, key: str):
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if raw.lower() in ("none", "null") and len(args) < len(typing.get_args(tp)):
            return None
        return _parse_value(args[0], raw, key)
    if dataclasses.is_dataclass(tp):
        raise ConfigError([(key, "is a section; set its fields, e.g. " + f"{key}.<field>=...")])
    try:
        if tp is bool:
            low = raw.lower()
            if low in ("true", "1", "yes"):
                return True
            if low in ("false", "0", "no"):
                return False
            raise ValueError(raw)
        if tp is int:
            return int(raw)
        if tp is float:
            return float(raw)
        if tp is str:
            return raw
        if origin is tuple:
            (elem, *_rest) = typing.get_args(tp)
            items = json.loads(raw) if raw.startswith("[") else [s for s in raw.split(",") if s]
            return tuple(_parse_value(elem, str(x), key) for x in items)
    except (ValueError, json.JSONDecodeError):
        raise ConfigError([(key, f"expected {getattr(tp, '__name__', tp)}, got {raw!r}")]) from None
    raise ConfigError([(key, f"cannot override a field of type {tp}")])
