"""Process defaults that make XLA:CPU fast, applied before JAX starts any thread.

    python -m coa_jax ...        applies them (coa_jax/__main__.py)
    python launch/bench.py ...   applies them
    COA_JAX_HOST_DEFAULTS=0      leaves the process alone (e.g. to measure without them)

Why, from profiles of the SFT step of configs/default.py on the 2-core machine in BENCHMARKS.md:

* glibc malloc. XLA:CPU allocates each execution's outputs and temporaries afresh. glibc hands
  blocks above its mmap threshold (at most 32 MiB) out as fresh mappings, and blocks of threads
  other than the main one come from per-thread arenas that also fall back to mmap; both are
  unmapped on free. So every step faulted in every page of its [B, T, V] logits and [B, H, T, T]
  attention tensors again: 186k page faults a step, a quarter of the step spent in the kernel
  zeroing pages. One arena, no mmap and no trimming keep freed blocks in the heap for the next
  step (0 faults per step after the first; a 64 MiB elementwise op 8x faster). The cost is that
  the heap does not shrink back after a peak, which a training process does not need.
* A persistent compilation cache (JAX_COMPILATION_CACHE_DIR, default ~/.cache/coa_jax/xla, kept
  if already set): a rerun, a resumed run or the next stage of the pipeline loads the programs
  compiled before instead of compiling them again (tens of seconds per stage on a CPU).
* Nothing else is changed by default, after measuring (BENCHMARKS.md, "CPU settings"): XLA's
  YNNPACK fusions are kept (turning them off helped only while the model's layout caused
  transposes, since fixed in models/linear.py and models/attention.py; dropping YNN reductions
  in the decode loop alone sped up batch-32 decode but slowed agent rollouts); float32 stays the
  CPU compute dtype (bfloat16 matmuls are slower without AVX512-BF16); intra-op threads follow the
  cores JAX sees, which `taskset` can narrow when the machine is shared.
"""

from __future__ import annotations

import ctypes
import os
import platform

_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8  # glibc mallopt parameters
COMPILE_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "coa_jax", "xla")


def apply() -> dict[str, object]:
    """Apply the defaults to this process (idempotent); returns what was applied."""
    if os.environ.get("COA_JAX_HOST_DEFAULTS", "1") == "0":
        return {"malloc": False, "compile_cache": os.environ.get("JAX_COMPILATION_CACHE_DIR")}
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", COMPILE_CACHE)
    return {"malloc": _tune_glibc_malloc(), "compile_cache": os.environ["JAX_COMPILATION_CACHE_DIR"]}


def _tune_glibc_malloc() -> bool:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    ok = libc.mallopt(_M_ARENA_MAX, 1) == 1  # before other threads exist: they share the main heap
    ok &= libc.mallopt(_M_MMAP_MAX, 0) == 1  # large blocks from the heap, not fresh mappings
    ok &= libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1  # keep freed memory for the next step
    return bool(ok)
