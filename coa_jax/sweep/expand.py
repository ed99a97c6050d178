"""A sweep as data: a base config, a grid (every combination) and zipped lists (in lockstep).

    SWEEP = {
        "base": "configs/default.py:quick",              # config file[:variant]
        "grid": {"sft2.optim.lr": [1e-3, 3e-4]},         # cartesian product over keys
        "zip": {"rl.group_size": [4, 8], "rl.prompts_per_step": [4, 2]},  # i-th values together
        "args": ["--eval-limit", "4"],                   # extra arguments for every member's command
    }

Members are grid x zip (the zip counts as one axis); each gets `--set key=value` overrides and a
name made of its values, used as its output directory.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import pathlib
import re
from typing import Any

from coa_jax.config.errors import ConfigError
from coa_jax.config.loading import load_module

KNOWN_KEYS = ("base", "command", "grid", "zip", "args", "out")


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    base: str
    grid: dict[str, list[Any]]
    zipped: dict[str, list[Any]]
    command: str = "pipeline"
    args: tuple[str, ...] = ()
    out: str = ""  # default output root ("" = runs/sweep-<file stem>)


@dataclasses.dataclass(frozen=True)
class Member:
    index: int
    name: str
    overrides: tuple[tuple[str, Any], ...]

    @property
    def sets(self) -> list[str]:
        """`--set` values: `key=value` with Python literals (lists/tuples as JSON-like text)."""
        return [f"{k}={_literal(v)}" for k, v in self.overrides]


def parse_sweep(data: dict, *, origin: str = "SWEEP") -> SweepSpec:
    """Check a SWEEP dict. Raises ConfigError naming the bad key."""
    if not isinstance(data, dict):
        raise ConfigError([(origin, "must be a dict")])
    problems = [(f"{origin}.{k}", f"unknown key; known: {KNOWN_KEYS}") for k in data if k not in KNOWN_KEYS]
    if not isinstance(data.get("base"), str) or not data.get("base"):
        problems.append((f"{origin}.base", "needs a config file[:variant]"))
    grid, zipped = data.get("grid", {}) or {}, data.get("zip", {}) or {}
    for name, table in (("grid", grid), ("zip", zipped)):
        if not isinstance(table, dict):
            problems.append((f"{origin}.{name}", "must map config keys to lists of values"))
            continue
        for key, values in table.items():
            if not isinstance(values, (list, tuple)) or not values:
                problems.append((f"{origin}.{name}.{key}", "must be a non-empty list of values"))
    if isinstance(grid, dict) and isinstance(zipped, dict):
        if set(grid) & set(zipped):
            problems.append((f"{origin}.zip", f"keys also in grid: {sorted(set(grid) & set(zipped))}"))
        lengths = {k: len(v) for k, v in zipped.items() if isinstance(v, (list, tuple))}
        if len(set(lengths.values())) > 1:
            problems.append((f"{origin}.zip", f"lists must have one length, got {lengths}"))
    args = data.get("args", ())
    if not isinstance(args, (list, tuple)) or not all(isinstance(a, str) for a in args):
        problems.append((f"{origin}.args", "must be a list of strings"))
    if problems:
        raise ConfigError(problems)
    return SweepSpec(base=data["base"], grid={k: list(v) for k, v in grid.items()},
                     zipped={k: list(v) for k, v in zipped.items()}, command=data.get("command", "pipeline"),
                     args=tuple(args), out=data.get("out", ""))


def load_sweep(path: str | pathlib.Path) -> SweepSpec:
    """The SWEEP dict of a Python config file. Raises ConfigError if missing or malformed."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep file not found: {path}")
    module = load_module(path, prefix="coa_jax_sweep_")
    if not hasattr(module, "SWEEP"):
        raise ConfigError(f"{path} defines no SWEEP dict")
    return parse_sweep(module.SWEEP, origin=f"{path.name}:SWEEP")


def expand(spec: SweepSpec) -> list[Member]:
    """Every member: the grid's product crossed with the zipped rows, in a stable order."""
    grid_axes = [[(k, v) for v in values] for k, values in spec.grid.items()]
    n_zip = len(next(iter(spec.zipped.values()))) if spec.zipped else 1
    zip_rows = [tuple((k, values[i]) for k, values in spec.zipped.items()) for i in range(n_zip)]
    members = []
    for combo in itertools.product(*grid_axes):
        for row in zip_rows:
            overrides = tuple(combo) + row
            index = len(members)
            members.append(Member(index, member_name(index, overrides), overrides))
    return members


def member_name(index: int, overrides) -> str:
    """`03_lr=0.001_group_size=8`: the index, then each key's last part and its value (path-safe)."""
    parts = [f"{index:02d}"] + [f"{k.rsplit('.', 1)[-1]}={_literal(v)}" for k, v in overrides]
    return re.sub(r"[^A-Za-z0-9_.=+-]", "-", "_".join(parts))


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value))
    return str(value)
