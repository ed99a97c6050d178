"""Targets of an ahead-of-time check: TPU slices, GPU hosts, CPU device counts (no JAX import).

    parse_target("v5p-16")  # Target(name="v5p-16", platform="tpu", devices=8, hbm_bytes=95 GiB, ...)
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re

GiB = 1 << 30

# Cloud TPU slice -> (topology, chip config, chips per host) for the TPU compiler. v4/v5p are
# "megacore" (one JAX device per chip, two cores); the name counts cores, so v5p-16 is 8 chips.
_TPU_FAMILIES = {  # family: (topology prefix, chip config, cores per chip, HBM GiB per chip)
    "v4": ("v4", "megacore", 2, 32), "v5p": ("v5", "megacore", 2, 95),
    "v5e": ("v5e", "default", 1, 16), "v5litepod": ("v5e", "default", 1, 16), "v6e": ("v6e", "default", 1, 32)}
_TPU_SHAPES = {  # chips -> physical shape (3D torus for v4/v5p, 2D for v5e/v6e)
    "3d": {4: "2x2x1", 8: "2x2x2", 16: "2x2x4", 32: "2x4x4", 64: "4x4x4", 128: "4x4x8", 256: "4x8x8"},
    "2d": {4: "2x2", 8: "2x4", 16: "4x4", 32: "4x8", 64: "8x8", 128: "8x16", 256: "16x16"}}
_GPUS = {"gpu": 80, "h100": 80, "h200": 141, "a100": 80, "a100-40": 40, "l4": 24}  # HBM GiB per GPU


@dataclasses.dataclass(frozen=True)
class Target:
    """Where a run will go: the device count, HBM per device, and (TPU) the compiler's topology."""

    name: str
    platform: str  # tpu | gpu | cpu
    devices: int
    hbm_bytes: int  # per device; 0 = unknown
    topology: tuple[str, str, tuple[int, int, int]] | None = None  # (name, chip config, chips per host)


def parse_target(spec: str) -> Target:
    """"v5p-16", "v4-32", "v5e-16", "v6e-8", "gpu:8" / "h100:8", "cpu:4" or a bare device count.

    Raises:
      ValueError: an unknown name or a slice size without a known shape.
    """
    spec = spec.strip().lower()
    if spec.isdigit():
        return Target(f"cpu:{spec}", "cpu", int(spec), 0)
    m = re.fullmatch(r"(v4|v5p|v5e|v5litepod|v6e)-(\d+)", spec)
    if m:
        prefix, config, cores_per_chip, hbm = _TPU_FAMILIES[m.group(1)]
        chips = int(m.group(2)) // cores_per_chip
        shapes = _TPU_SHAPES["3d" if cores_per_chip == 2 else "2d"]
        if chips not in shapes:
            raise ValueError(f"no known shape for {spec} ({chips} chips); known chip counts: {sorted(shapes)}")
        host = (2, 2, 1) if chips >= 4 else (1, 1, 1)
        return Target(spec, "tpu", chips, hbm * GiB, (f"{prefix}:{shapes[chips]}", config, host))
    m = re.fullmatch(r"([a-z0-9-]+):(\d+)", spec)
    if m and (m.group(1) in _GPUS or m.group(1) == "cpu"):
        kind, n = m.group(1), int(m.group(2))
        if kind == "cpu":
            return Target(spec, "cpu", n, 0)
        return Target(spec, "gpu", n, _GPUS[kind] * GiB)
    raise ValueError(f"unknown target {spec!r}: use a TPU slice (v5p-16, v4-32, v5e-16, v6e-8), "
                     f"GPUs ({', '.join(f'{k}:N' for k in _GPUS)}), cpu:N or a device count")


def tpu_compiler_available() -> bool:
    """libtpu is installed (`pip install libtpu==<the version jax[tpu] pins>`): TPU compiles need no TPU."""
    return importlib.util.find_spec("libtpu") is not None
