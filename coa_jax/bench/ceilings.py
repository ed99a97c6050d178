"""The machine's own ceilings, measured once per run: a large matmul and a large copy.

MFU (model FLOPs utilisation) and memory-bandwidth utilisation are reported against these
measured ceilings, and against the vendor's nominal peak where one is known (GPUs), because
on a CPU the nominal peak depends on clocks and vector units that a shared VM does not promise.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

# Dense peak FLOP/s and memory bandwidth (bytes/s) from vendor data sheets, by device kind prefix.
NOMINAL = {
    "NVIDIA H100": {"bfloat16": 989e12, "float32": 67e12, "bandwidth": 3.35e12},  # SXM
    "NVIDIA H200": {"bfloat16": 989e12, "float32": 67e12, "bandwidth": 4.8e12},
    "NVIDIA A100": {"bfloat16": 312e12, "float32": 19.5e12, "bandwidth": 2.0e12},
}


@dataclasses.dataclass(frozen=True)
class Ceilings:
    """Measured peak matmul FLOP/s per dtype and copy bandwidth (read + write bytes/s)."""

    device: str
    matmul_flops: dict[str, float]
    copy_bytes_per_s: float
    nominal: dict[str, float]

    def flops(self, dtype: str) -> float:
        return self.matmul_flops.get(dtype) or self.matmul_flops["float32"]


def _best_of(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def measure(*, quick: bool = False, dtypes: tuple[str, ...] = ("float32", "bfloat16")) -> Ceilings:
    """Best-of-N timings (a ceiling is what the machine can do, so the fastest run counts)."""
    dev = jax.devices()[0]
    on_cpu = dev.platform == "cpu"
    n = (1024 if quick else 2048) if on_cpu else 8192
    repeats = 3 if quick else 5
    flops = {}
    for name in dtypes:
        a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), jnp.dtype(name))
        mm = jax.jit(lambda x, y: x @ y)
        flops[name] = 2 * n**3 / _best_of(mm, a, a, repeats=repeats)
    words = (64 if quick else 128) * 2**20 // 4 if on_cpu else 2**30 // 4
    x = jnp.ones((words,), jnp.float32)
    copy = jax.jit(lambda v: v + 1.0)
    bandwidth = 2 * x.nbytes / _best_of(copy, x, repeats=repeats)
    kind = dev.device_kind
    nominal = next((v for k, v in NOMINAL.items() if kind.startswith(k)), {})
    return Ceilings(f"{dev.platform}:{kind}", flops, bandwidth, nominal)


def report(c: Ceilings) -> str:
    parts = [f"{k} matmul {v / 1e9:.1f} GFLOP/s" for k, v in c.matmul_flops.items()]
    return f"ceilings ({c.device}): " + ", ".join(parts) + f", copy {c.copy_bytes_per_s / 1e9:.1f} GB/s"
