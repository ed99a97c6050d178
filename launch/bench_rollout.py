"""Agent rollout throughput: this engine vs a reference-style loop, and the cost of a slow retriever.

    python launch/bench_rollout.py --quick            # ~2 minutes on 2 CPU cores
    python launch/bench_rollout.py --out bench.json   # the full workload

One workload (prompts x G trajectories of a scripted agent that thinks, searches and answers),
one model, one tool (BM25 over the embedded world's corpus behind the loopback retrieval server),
run these ways, alternating (A B C D, B C D A, ...) after warm-up runs of each, medians reported:

  engine             this engine (KV cache kept across tool calls, tools overlap decoding)
  reference-loop     the reference's loop on `transformers` (PyTorch CPU): generate to the end,
                     cut at the first action, search, re-encode the text, generate again from scratch
  engine+100ms       this engine, the server adding 100 ms to every request
  engine+100ms-sync  the same without overlap (every row waits for outstanding searches)

Throughput counts policy tokens kept in the final trajectories (observations excluded) per second.
The same workload, with lognormal latency and device idle, is `python launch/bench.py a1`
(coa_jax/bench/a1_rollout.py holds the shared pieces).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

from coa_jax.bench.a1_rollout import MODEL, THINK, ReferenceProcess, Run, engine_run  # noqa: E402,F401
from coa_jax.config.schema import MeshConfig  # noqa: E402
from coa_jax.data.world.build import build_world  # noqa: E402
from coa_jax.env.bm25 import BM25Retriever  # noqa: E402
from coa_jax.env.observation import TokenCounter  # noqa: E402
from coa_jax.env.registry import ToolRegistry  # noqa: E402
from coa_jax.env.server import Latency, serve_in_thread  # noqa: E402
from coa_jax.rollout.config import RolloutConfig  # noqa: E402
from coa_jax.rollout.engine import RolloutEngine  # noqa: E402
from coa_jax.rollout.scripted import AgentScript, agent_grammar, scripted_params  # noqa: E402
from coa_jax.sharding.mesh import make_mesh  # noqa: E402
from coa_jax.sharding.rules import SAMPLING_RULES, Sharder  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small workload (~2 minutes on 2 cores)")
    parser.add_argument("--prompts", type=int, default=None)
    parser.add_argument("--group-size", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--p-search", type=float, default=0.1, help="scripted agent: search after a thought")
    parser.add_argument("--p-answer", type=float, default=0.03, help="scripted agent: answer after a thought")
    parser.add_argument("--max-actions", type=int, default=6)
    parser.add_argument("--out", default=None, help="write the results as JSON")
    args = parser.parse_args(argv)
    prompts_n = args.prompts or (4 if args.quick else 8)
    g = args.group_size or 2
    repeats = args.repeats or (3 if args.quick else 5)
    n_tokens = 768 if args.quick else 1024
    torch_threads = os.cpu_count() or 1

    work = tempfile.mkdtemp(prefix="bench_rollout_")
    build_world(work, seed=0, size="tiny")
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(os.path.join(work, "tokenizer"))
    # ~8 think words between decisions; ~3 searches per trajectory before answering
    script = AgentScript(think=THINK, query=(" capital", " city"), p_search=args.p_search, p_answer=args.p_answer)
    grammar = agent_grammar(tok, script, eos_id=tok.eos_token_id)
    sharder = Sharder(make_mesh(MeshConfig(data=1), jax.devices()[:1]), SAMPLING_RULES)
    params = scripted_params(MODEL, grammar, sharder, context_scale=0.02)
    head = tok.encode("<|im_start|>user\nWhere was it founded?<|im_end|>\n<|im_start|>assistant\n<think>\n",
                      add_special_tokens=False)
    prompts = [head[:-1] + tok.encode(f" q{i}\n", add_special_tokens=False) for i in range(prompts_n)]
    cfg = RolloutConfig(batch_slots=prompts_n * g, max_prompt_tokens=64, max_response_tokens=n_tokens,
                        max_actions=args.max_actions, answer_reserve=32, temperature=1.0)
    retriever = BM25Retriever(os.path.join(work, "corpus.jsonl"))
    tokens = TokenCounter.from_tokenizer(tok)
    results: dict[str, list[Run]] = {}
    with serve_in_thread(retriever) as fast_url, \
            serve_in_thread(retriever, latency=Latency(fixed_ms=args.latency_ms)) as slow_url:  # fmt: skip
        def registry(url: str) -> ToolRegistry:
            options = {"url": url, "topk": 3, "max_tokens": 48, "cache_size": 0}
            return ToolRegistry.from_config({"search": "http"}, {"search": options}, tokens=tokens)

        fast, slow = registry(fast_url), registry(slow_url)
        eos = [tok.eos_token_id]
        engine = RolloutEngine(MODEL, sharder, cfg, tok, eos_ids=eos, registry=fast)
        engine_slow = RolloutEngine(MODEL, sharder, cfg, tok, eos_ids=eos, registry=slow)
        engine_sync = RolloutEngine(MODEL, sharder, dataclasses.replace(cfg, overlap_tools=False), tok, eos_ids=eos,
                                    registry=slow)
        reference = ReferenceProcess(params, tok, fast_url, cfg, os.path.join(work, "hf"), torch_threads)
        runners = {
            "engine": lambda seed: engine_run("engine", engine, params, prompts, g, seed),
            "reference-loop": lambda seed: reference.run(prompts, g, seed),
            f"engine+{args.latency_ms:.0f}ms": lambda seed: engine_run("slow", engine_slow, params, prompts, g, seed),
            f"engine+{args.latency_ms:.0f}ms-sync": lambda seed: engine_run("sync", engine_sync, params, prompts, g,
                                                                            seed),
        }
        for name, runner in runners.items():  # warm-up: compiles (every cache window), first requests
            for seed in range(1 if name == "reference-loop" else 3):
                runner(100 + seed)
        names = list(runners)
        for rep in range(repeats):  # A B C D, B C D A, ...: slow drifts of a shared machine hit all alike
            for name in names[rep % len(names):] + names[:rep % len(names)]:
                run = runners[name](rep + 1)
                results.setdefault(name, []).append(run)
                print(f"  rep {rep} {name:<22} {run.wall_s:7.2f} s  {run.tokens_per_s:8.1f} tok/s", flush=True)
        reference.close()
        fast.close()
        slow.close()
    base = statistics.median(r.tokens_per_s for r in results["engine"])
    table = []
    print(f"\n{'setup':<24}{'tok/s':>9}{'vs engine':>11}{'wall s':>9}{'tokens':>8}{'acts':>6}{'forced':>8}")
    for name, runs in results.items():
        tps = statistics.median(r.tokens_per_s for r in runs)
        row = {"setup": name, "tokens_per_s": round(tps, 1), "ratio_vs_engine": round(tps / base, 3),
               "wall_s": round(statistics.median(r.wall_s for r in runs), 3),
               "policy_tokens": int(statistics.median(r.policy_tokens for r in runs)),
               "mean_actions": round(statistics.mean(r.mean_actions for r in runs), 2),
               "forced_or_limited": round(statistics.mean(r.forced for r in runs), 2)}  # fmt: skip
        table.append(row)
        print(f"{name:<24}{tps:>9.1f}{tps / base:>11.2f}{row['wall_s']:>9.2f}{row['policy_tokens']:>8}"
              f"{row['mean_actions']:>6.2f}{row['forced_or_limited']:>8.2f}")
    ref = next(r for r in table if r["setup"] == "reference-loop")["tokens_per_s"]
    slow_tps = table[2]["tokens_per_s"]
    summary = {"engine_vs_reference": round(base / ref, 2), "latency_loss": round(1 - slow_tps / base, 3)}
    print(f"\nengine / reference-loop = {summary['engine_vs_reference']}x (goal >= 3); "
          f"loss from {args.latency_ms:.0f} ms per search = {summary['latency_loss']:.1%} (goal <= 20%)")
    print(f"load average during the run: {os.getloadavg()} (a shared machine makes single runs noisy)")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"workload": {"prompts": prompts_n, "group_size": g, "max_response_tokens": n_tokens,
                                    "max_actions": cfg.max_actions, "batch_slots": cfg.batch_slots,
                                    "model": dataclasses.asdict(MODEL), "repeats": repeats},
                       "table": table, "summary": summary, "device": str(jax.devices()[0]),
                       "load_average": os.getloadavg(),
                       "runs": {k: [dataclasses.asdict(r) for r in v] for k, v in results.items()}}, f, indent=2)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
