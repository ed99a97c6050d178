"""K1: the compile budget of a GRPO run whose trajectories land in bucketed lengths.

Runs the R1 step (`train.grpo.GRPOBody` on the A1 workload) for 20 steps (--quick: 8) and counts
XLA compilations per step with `CompileCounter`. Row lengths are padded to power-of-two buckets
and the sampler's cache windows come from a short ladder, so compilations should stop once every
bucket the run reaches has been seen. Goals: 0 compilations after warm-up, compile time <= 10% of
the run. "Warm-up" is the first step plus any step that meets a bucket for the first time; a
compilation at any other step is a recompile and is named.
"""

from __future__ import annotations

import os
import time

from coa_jax.bench import harness
from coa_jax.bench.a1_rollout import build_workload, registry_for
from coa_jax.bench.r1_grpo import grpo_body


def run(opts, ceil) -> dict:
    from coa_jax.env.bm25 import BM25Retriever
    from coa_jax.env.server import serve_in_thread
    from coa_jax.rollout.generate import bucket

    steps = opts.repeats or (8 if opts.quick else 20)
    prompts_n, g = opts.batch or (2 if opts.quick else 4), 5
    wl = build_workload(prompts_n, g, opts.seq or (256 if opts.quick else 512), 5, 0.1, 0.03)
    retriever = BM25Retriever(os.path.join(wl.work, "corpus.jsonl"))
    rows = []
    with serve_in_thread(retriever) as url:
        reg = registry_for(url, wl.tok)
        body, state = grpo_body(wl, reg, prompts_n, g, steps)
        counter = harness.CompileCounter()
        seen_buckets: set[int] = set()
        t_run = time.perf_counter()
        for step in range(steps):
            t0 = time.perf_counter()
            with counter:
                state, m = body(state, step)
            wall = time.perf_counter() - t0
            length = bucket(int(m["response_length"]) + 1)  # for the log only; the body picks its own
            new_bucket = bool(set(body._steps) - seen_buckets)
            seen_buckets |= set(body._steps)
            rows.append({"step": step, "wall_s": wall, "compiles": counter.count, "compile_s": counter.seconds,
                         "buckets": sorted(body._steps), "new_bucket": new_bucket, "compiled": list(counter.names),
                         "compile_times": [round(d, 2) for d in counter.durations],
                         "response_length": m["response_length"], "approx_bucket": length})
            print(f"  step {step:2d} {wall:6.2f} s  compiles {counter.count:2d} ({counter.seconds:5.2f} s)  "
                  f"row buckets {sorted(body._steps)}", flush=True)
        total = time.perf_counter() - t_run
        reg.close()
    compile_s = sum(r["compile_s"] for r in rows)
    after = [r for r in rows[1:] if r["compiles"] and not r["new_bucket"]]
    summary = {"steps": steps, "run_s": total, "compile_s": compile_s, "compile_fraction": compile_s / total,
               "compile_fraction_after_first_step": sum(r["compile_s"] for r in rows[1:]) / max(
                   total - rows[0]["wall_s"], 1e-9),
               "recompiles_after_warmup": sum(r["compiles"] for r in after),
               "recompiled": sorted({n for r in after for n in r["compiled"]}),
               "steps_meeting_new_buckets": [r["step"] for r in rows[1:] if r["new_bucket"]]}
    print(harness.format_table([summary], [
        ("steps", "steps", ""), ("run_s", "run s", ".1f"), ("compile_s", "compile s", ".1f"),
        ("compile_fraction", "compile share", ".1%"),
        ("compile_fraction_after_first_step", "share after step 0", ".1%"),
        ("recompiles_after_warmup", "recompiles after warm-up", "")]))
    first = sorted(zip(rows[0]["compile_times"], rows[0]["compiled"]), reverse=True)
    print("first step's compilations (s): " + ", ".join(f"{n} {d:.1f}" for d, n in first))
    if summary["recompiled"]:
        print("recompiled:", ", ".join(summary["recompiled"]))
    return {"summary": summary, "steps": rows}
