"""A1: agent rollout throughput: the engine vs the reference-style loop, and tool overlap.

One workload: P prompts x G samples of a scripted agent (coa_jax.rollout.scripted: real weights
that think, search 1-5 times and answer), BM25 over the embedded world's corpus behind the
loopback retrieval server, at a configurable latency (0 ms, 100 ms, lognormal with a 200 ms
median). Setups, alternated after warm-up:

  engine@L            this engine (KV cache kept across tool calls, tools overlap decoding)
  engine@L-sync       the same without overlap (every row waits for the outstanding searches)
  reference-loop@L    the reference's loop on `transformers` (generate to the end, cut at the
                      first action, search, re-encode the text, generate again from scratch)

Throughput counts policy tokens kept in the final trajectories (observations excluded) per
second. Device idle is the share of the engine's wall time the host sat waiting for tools with
no row left to decode.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import tempfile
import time

import numpy as np

from coa_jax.bench import harness
from coa_jax.data.provenance import Provenance
from coa_jax.models.model_config import ModelConfig
from coa_jax.rollout.config import RolloutConfig

THINK = (" was", " born", " founded", " year", " of", " is", " by", " and", " to", " for")
MODEL = ModelConfig(vocab_size=1040, hidden_size=256, intermediate_size=768, num_layers=4, num_heads=4,
                    num_kv_heads=2, max_position_embeddings=4096, init_std=0.05)
LATENCIES = {"0": {}, "100": {"fixed_ms": 100.0}, "lognormal200": {"median_ms": 200.0, "sigma": 0.5}}


@dataclasses.dataclass(frozen=True)
class Run:
    name: str
    wall_s: float
    policy_tokens: int
    trajectories: int
    mean_actions: float
    forced: float
    idle_s: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.policy_tokens / self.wall_s


def engine_run(name: str, engine, params, prompts, group_size: int, seed: int) -> Run:
    start = time.perf_counter()
    result = engine.rollout(params, prompts, group_size=group_size, seed=seed)
    wall = time.perf_counter() - start
    trajs = result.trajectories
    policy = sum(int(np.isin(t.labels, [int(Provenance.POLICY), int(Provenance.ANSWER)]).sum()) for t in trajs)
    return Run(name, wall, policy, len(trajs), float(np.mean([t.num_actions for t in trajs])),
               float(np.mean([bool(t.forced) for t in trajs])), result.stats.idle_wait_s)


def _reference_worker(conn, hf_dir: str, url: str, cfg: RolloutConfig, threads: int) -> None:
    """Child process: the transformers model and its own search client (PyTorch's threads stay out
    of the JAX process); answers (prompts, group_size, seed) requests with a Run."""
    from coa_jax import host_defaults

    host_defaults.apply()
    import torch
    import transformers

    from coa_jax.env.observation import TokenCounter
    from coa_jax.env.registry import ToolRegistry
    from coa_jax.rollout.reference_loop import ReferenceLoop

    torch.set_num_threads(threads)
    tok = transformers.AutoTokenizer.from_pretrained(hf_dir)
    options = {"url": url, "topk": 3, "max_tokens": 48, "cache_size": 0}
    registry = ToolRegistry.from_config({"search": "http"}, {"search": options},
                                        tokens=TokenCounter.from_tokenizer(tok))
    model = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    loop = ReferenceLoop(model, tok, registry, cfg)
    conn.send("ready")
    while (request := conn.recv()) is not None:
        prompts, group_size, seed = request
        start = time.perf_counter()
        rows = loop.run(prompts, group_size=group_size, seed=seed)
        wall = time.perf_counter() - start
        conn.send(Run("reference-loop", wall, sum(r.policy_tokens for r in rows), len(rows),
                      float(np.mean([r.actions for r in rows])), float(np.mean([r.limited for r in rows]))))
    registry.close()


class ReferenceProcess:
    """The reference loop in a child process, driven over a pipe."""

    def __init__(self, params, tok, url: str, cfg: RolloutConfig, hf_dir: str, threads: int, model=MODEL):
        import multiprocessing

        from coa_jax.models.hf_export import export_hf

        export_hf(params, model, hf_dir, tokenizer=tok)
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_reference_worker, args=(child, hf_dir, url, cfg, threads), daemon=True)
        self.proc.start()
        if self.conn.recv() != "ready":
            raise RuntimeError("the reference worker did not start")

    def run(self, prompts, group_size: int, seed: int) -> Run:
        self.conn.send((prompts, group_size, seed))
        return self.conn.recv()

    def close(self) -> None:
        self.conn.send(None)
        self.proc.join(timeout=30)


@dataclasses.dataclass
class Workload:
    """The world, tokenizer, scripted policy and prompts shared by every setup."""

    work: str
    tok: object
    sharder: object
    params: object
    prompts: list
    cfg: RolloutConfig


def build_workload(prompts_n: int, group_size: int, max_tokens: int, max_actions: int, p_search: float,
                   p_answer: float) -> Workload:
    import jax
    import transformers

    from coa_jax.config.schema import MeshConfig
    from coa_jax.data.world.build import build_world
    from coa_jax.rollout.scripted import AgentScript, agent_grammar, scripted_params
    from coa_jax.sharding.mesh import make_mesh
    from coa_jax.sharding.rules import SAMPLING_RULES, Sharder

    work = tempfile.mkdtemp(prefix="bench_rollout_")
    build_world(work, seed=0, size="tiny")
    tok = transformers.AutoTokenizer.from_pretrained(os.path.join(work, "tokenizer"))
    # ~8 think words between decisions; ~3 searches per trajectory before answering
    script = AgentScript(think=THINK, query=(" capital", " city"), p_search=p_search, p_answer=p_answer)
    grammar = agent_grammar(tok, script, eos_id=tok.eos_token_id)
    sharder = Sharder(make_mesh(MeshConfig(data=1), jax.devices()[:1]), SAMPLING_RULES)
    params = scripted_params(MODEL, grammar, sharder, context_scale=0.02)
    head = tok.encode("<|im_start|>user\nWhere was it founded?<|im_end|>\n<|im_start|>assistant\n<think>\n",
                      add_special_tokens=False)
    prompts = [head[:-1] + tok.encode(f" q{i}\n", add_special_tokens=False) for i in range(prompts_n)]
    cfg = RolloutConfig(batch_slots=prompts_n * group_size, max_prompt_tokens=64, max_response_tokens=max_tokens,
                        max_actions=max_actions, answer_reserve=32, temperature=1.0)
    return Workload(work, tok, sharder, params, prompts, cfg)


def registry_for(url: str, tok):
    from coa_jax.env.observation import TokenCounter
    from coa_jax.env.registry import ToolRegistry

    options = {"url": url, "topk": 3, "max_tokens": 48, "cache_size": 0}
    return ToolRegistry.from_config({"search": "http"}, {"search": options}, tokens=TokenCounter.from_tokenizer(tok))


def run(opts, ceil) -> dict:
    import contextlib

    from coa_jax.env.bm25 import BM25Retriever
    from coa_jax.env.server import Latency, serve_in_thread
    from coa_jax.rollout.engine import RolloutEngine

    latencies = (opts.latency_ms or ("0,lognormal200" if opts.quick else "0,100,lognormal200")).split(",")
    unknown = [x for x in latencies if x not in LATENCIES]
    if unknown:
        raise SystemExit(f"unknown --latency-ms {unknown}; choose from {sorted(LATENCIES)}")
    prompts_n, g = (opts.batch or (2 if opts.quick else 8)), 5
    repeats = opts.repeats or (2 if opts.quick else 4)
    wl = build_workload(prompts_n, g, opts.seq or (384 if opts.quick else 1024), 5, 0.1, 0.03)
    retriever = BM25Retriever(os.path.join(wl.work, "corpus.jsonl"))
    threads = len(os.sched_getaffinity(0))
    runners, closers = {}, []
    with contextlib.ExitStack() as stack:
        for lat in latencies:
            url = stack.enter_context(serve_in_thread(retriever, latency=Latency(**LATENCIES[lat])))
            reg = registry_for(url, wl.tok)
            closers.append(reg.close)
            eos = [wl.tok.eos_token_id]
            engine = RolloutEngine(MODEL, wl.sharder, wl.cfg, wl.tok, eos_ids=eos, registry=reg)
            sync = RolloutEngine(MODEL, wl.sharder, dataclasses.replace(wl.cfg, overlap_tools=False), wl.tok,
                                 eos_ids=eos, registry=reg)
            runners[f"engine@{lat}"] = _engine_runner(f"engine@{lat}", engine, wl, g)
            if lat != "0":
                runners[f"engine@{lat}-sync"] = _engine_runner(f"engine@{lat}-sync", sync, wl, g)
            if not opts.no_peer and (lat == "0" or not opts.quick):
                ref = ReferenceProcess(wl.params, wl.tok, url, wl.cfg, os.path.join(wl.work, f"hf{lat}"), threads)
                closers.append(ref.close)
                runners[f"reference-loop@{lat}"] = _reference_runner(ref, wl, g)
        counter = harness.CompileCounter()
        for name, fn in runners.items():  # extra warm-up: every cache window of the engine
            if name.startswith("engine"):
                fn(-2), fn(-3)
        raw = {}
        samples = harness.alternate(_recording(runners, raw), repeats, warmup=1, counter=counter)
        for close in closers:
            close()
    rows = []
    base = statistics.median(s.work / s.wall_s for s in samples[f"engine@{latencies[0]}"])
    for name, ss in samples.items():
        tps = statistics.median(s.work / s.wall_s for s in ss)
        runs = raw[name]
        lat = name.split("@")[1].removesuffix("-sync")
        engine_tps = statistics.median(s.work / s.wall_s for s in samples[f"engine@{lat}"])
        rows.append({"setup": name, "tokens_per_s": tps, "vs_engine_same_latency": tps / engine_tps,
                     "vs_engine_0ms": tps / base, "wall_s": statistics.median(s.wall_s for s in ss),
                     "policy_tokens": int(statistics.median(r.policy_tokens for r in runs)),
                     "mean_actions": statistics.mean(r.mean_actions for r in runs),
                     "device_idle": (statistics.median(r.idle_s / r.wall_s for r in runs)
                                     if name.startswith("engine") else None)})
    print(harness.format_table(rows, [
        ("setup", "setup", ""), ("tokens_per_s", "tok/s", ".1f"), ("vs_engine_same_latency", "vs engine@L", ".2f"),
        ("wall_s", "wall s", ".2f"), ("policy_tokens", "tokens", ""), ("mean_actions", "actions", ".2f"),
        ("device_idle", "device idle", ".1%")]))
    summary = {}
    for lat in latencies:
        e = next(r for r in rows if r["setup"] == f"engine@{lat}")
        ref = next((r for r in rows if r["setup"] == f"reference-loop@{lat}"), None)
        sync = next((r for r in rows if r["setup"] == f"engine@{lat}-sync"), None)
        if ref:
            summary[f"engine_over_reference@{lat}"] = e["tokens_per_s"] / ref["tokens_per_s"]
        if sync:
            summary[f"overlap_over_sync@{lat}"] = e["tokens_per_s"] / sync["tokens_per_s"]
        summary[f"device_idle@{lat}"] = e["device_idle"]
    summary["recompiles_after_warmup"] = counter.count
    print("  ".join(f"{k} = {v:.2f}" if isinstance(v, float) else f"{k} = {v}" for k, v in summary.items()))
    return {"rows": rows, "summary": summary,
            "workload": {"prompts": prompts_n, "group_size": g, "max_response_tokens": wl.cfg.max_response_tokens,
                         "max_actions": wl.cfg.max_actions, "model": dataclasses.asdict(MODEL), "repeats": repeats},
            "runs": {k: [dataclasses.asdict(r) for r in v] for k, v in raw.items()}}


def _engine_runner(name, engine, wl: Workload, g: int):
    return lambda i: engine_run(name, engine, wl.params, wl.prompts, g, 100 + i if i < 0 else i + 1)


def _reference_runner(ref: ReferenceProcess, wl: Workload, g: int):
    return lambda i: ref.run(wl.prompts, g, 100 + i if i < 0 else i + 1)


def _recording(runners, raw: dict):
    """Adapt Run-returning runners to harness.Sample (work = policy tokens), keeping the Runs."""
    def wrap(name, fn):
        def call(i):
            r = fn(i)
            if i >= 0:
                raw.setdefault(name, []).append(r)
            return harness.Sample(r.wall_s, float("nan"), float(r.policy_tokens))
        return call
    return {name: wrap(name, fn) for name, fn in runners.items()}
