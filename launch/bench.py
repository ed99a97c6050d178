"""Benchmarks side by side with peers on this machine: one entry point, a table and a JSON file.

    python launch/bench.py t1 --quick                 # SFT step vs transformers + torch AdamW (~1 min)
    python launch/bench.py d1 --quick                 # decode vs transformers generate
    python launch/bench.py a1 --quick                 # agent rollout vs the reference-style loop
    python launch/bench.py r1 --quick                 # one GRPO step, phase split, vs transformers + torch
    python launch/bench.py k1 --quick                 # compile budget of a bucketed GRPO run
    python launch/bench.py t1 --model qwen2-1.5b --dtype bfloat16 --batch 8 --seq 2048   # on a GPU
    python launch/bench.py t1 --quick --cores 1       # ours and the peer on one core (shared machines)

Ours and the peer alternate (A B A B ...) after warm-up; medians, spread (IQR) and the ratio
peer_time / our_time (> 1: we are faster) are printed with the fraction of the machine's ceilings
(a large matmul and a large copy, measured once per run). Results: --out FILE.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from coa_jax import host_defaults  # noqa: E402


def _pin_cores(argv: list[str]) -> list[int]:
    """--cores N: run on the first N CPUs of this process's mask (both sides: the peer inherits it).
    Done before JAX starts, whose CPU thread pool is sized from the mask."""
    if "--cores" in argv:
        n = int(argv[argv.index("--cores") + 1])
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:n])
    return sorted(os.sched_getaffinity(0))


CORES = _pin_cores(sys.argv)
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # a GPU is shared with the peer's process
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", "")  # compile times are measured cold (set it to measure warm)
APPLIED = host_defaults.apply()  # before JAX starts its threads

import jax  # noqa: E402

from coa_jax.bench import ceilings  # noqa: E402

BENCHMARKS = {
    "t1": ("coa_jax.bench.t1_sft", "SFT step vs transformers + torch AdamW"),
    "d1": ("coa_jax.bench.d1_decode", "decode vs transformers generate"),
    "a1": ("coa_jax.bench.a1_rollout", "agent rollout vs the reference-style loop and our synchronous mode"),
    "r1": ("coa_jax.bench.r1_grpo", "one GRPO step, phase split, vs transformers + torch"),
    "k1": ("coa_jax.bench.k1_compile", "compile budget of a 20-step bucketed GRPO run"),
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("bench", choices=sorted(BENCHMARKS), help="; ".join(f"{k}: {v[1]}" for k, v in BENCHMARKS.items()))
    p.add_argument("--quick", action="store_true", help="a run of about a minute on a 2-core CPU")
    p.add_argument("--out", default=None, help="write the results as JSON")
    p.add_argument("--model", default=None, help="model shape: world, smollm2-135m, qwen2-1.5b, qwen2-7b")
    p.add_argument("--dtype", default=None, help="compute dtype (default float32 on CPU, bfloat16 on GPU)")
    p.add_argument("--remat", default="none", help="t1: activation checkpointing policy (none, full, dots, ...)")
    p.add_argument("--attention", default="xla", help="t1/d1: attention implementation (xla, cudnn on GPUs)")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--seq", type=int, default=None, help="tokens per row (t1, r1) / context (d1)")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per setup")
    p.add_argument("--torch-compile", action="store_true", help="t1/d1: also time the peer under torch.compile")
    p.add_argument("--latency-ms", default=None, help="a1: retrieval latencies, e.g. 0,100,lognormal200")
    p.add_argument("--no-peer", action="store_true", help="time only ours (e.g. shapes too large for the peer)")
    p.add_argument("--cores", type=int, default=None,
                   help="use only the first N cores, ours and the peer alike (a shared machine: see BENCHMARKS.md)")
    opts = p.parse_args(argv)
    if opts.dtype is None:
        opts.dtype = "float32" if jax.default_backend() == "cpu" else "bfloat16"
    return opts


def environment() -> dict:
    import importlib.metadata as md

    versions = {}
    for pkg in ("jax", "jaxlib", "flax", "optax", "torch", "transformers", "numpy"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return {"platform": platform.platform(), "processor": _cpu_model(), "cpu_count": os.cpu_count(),
            "cores_used": CORES,
            "jax_devices": [str(d) for d in jax.devices()], "versions": versions, "host_defaults": APPLIED,
            "xla_flags": os.environ.get("XLA_FLAGS", ""), "load_average": os.getloadavg()}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def main(argv: list[str] | None = None) -> int:
    opts = parse(argv)
    import importlib

    module = importlib.import_module(BENCHMARKS[opts.bench][0])
    env = environment()
    print(f"{opts.bench}: {BENCHMARKS[opts.bench][1]}  |  {env['processor']}, "
          f"{len(CORES)} of {env['cpu_count']} cores, "
          f"jax {env['versions']['jax']}, torch {env['versions']['torch']}, "
          f"transformers {env['versions']['transformers']}  |  load {env['load_average'][0]:.1f}", flush=True)
    ceil = ceilings.measure(quick=opts.quick)
    print(ceilings.report(ceil), flush=True)
    t0 = time.perf_counter()
    result = module.run(opts, ceil)
    wall = time.perf_counter() - t0
    env["load_average_end"] = os.getloadavg()
    print(f"{opts.bench} done in {wall:.0f} s; load average {env['load_average_end'][0]:.1f} at the end "
          "(a shared machine makes single runs noisy; ratios of alternated runs are the robust numbers)")
    if opts.out:
        doc = {"bench": opts.bench, "command": " ".join(["python", "launch/bench.py"] + (argv or sys.argv[1:])),
               "options": vars(opts), "environment": env, "ceilings": dataclasses.asdict(ceil), "wall_s": wall,
               **result}
        with open(opts.out, "w") as f:
            json.dump(doc, f, indent=2, default=float)
        print(f"wrote {opts.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
