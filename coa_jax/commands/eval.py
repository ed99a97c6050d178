"""`python -m coa_jax eval`: score a checkpoint on QA benchmarks as the model alone, in a workflow, or as an agent.

    python -m coa_jax eval --checkpoint PATH --data FILE_OR_TFDS_NAME --mode {model-only,workflow,agent,rag}
        [--retriever bm25:CORPUS | http://HOST:PORT] [--limit N] [--out results.json]

Prints a table per benchmark (strict EM, reference EM, F1, mean actions, answer rate, success by
number of actions) and writes the report as JSON (--out) and every trajectory as JSONL
(--trajectories, default: beside --out).
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="Hugging Face directory or .gguf file")
    p.add_argument("--data", required=True, help="verl .parquet, world questions .jsonl, world directory, or TFDS name")
    p.add_argument("--mode", required=True, choices=["model-only", "workflow", "agent", "rag"],
                   help="rag: search the question once, then the model reads the results and answers")
    p.add_argument("--retriever", default=None, help="bm25:CORPUS_JSONL or http://HOST:PORT (workflow, agent, rag)")
    p.add_argument("--limit", type=int, default=None, help="first N questions of every benchmark in --data")
    p.add_argument("--split", default="test", help="split of a world directory or TFDS dataset")
    p.add_argument("--out", default=None, help="report JSON (default: print only)")
    p.add_argument("--trajectories", default=None, help="trajectories JSONL (default: <out>.trajectories.jsonl)")
    p.add_argument("--tokenizer", default=None, help="tokenizer directory (default: the checkpoint's)")
    p.add_argument("--batch-slots", type=int, default=8)
    p.add_argument("--max-response-tokens", type=int, default=1024)
    p.add_argument("--max-actions", type=int, default=10)
    p.add_argument("--answer-reserve", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    p.add_argument("--workflow-rounds", type=int, default=4, help="most searches per question in workflow mode")
    p.add_argument("--topk", type=int, default=3, help="documents per search")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--devices", type=int, default=0, help="devices of the (data-parallel) mesh; 0: all")
    p.add_argument("--prompt-style", default="auto", choices=["auto", "file", "compact", "reference"],
                   help="the instruction before each question: compact / reference (rewritten from the question), "
                        "file (as --data has it); auto (default): the style the checkpoint's coa_jax run trained "
                        "with (RUN/config.json beside RUN/hf), else file")


def build_registry(spec: str, tokenizer, topk: int):
    """The search tool from `bm25:CORPUS` or `http://HOST:PORT`."""
    from coa_jax.env.observation import TokenCounter
    from coa_jax.env.registry import ToolRegistry

    tokens = TokenCounter.from_tokenizer(tokenizer)
    if spec.startswith("bm25:"):
        return ToolRegistry.from_config({"search": "bm25"}, {"search": {"corpus": spec[5:], "topk": topk}},
                                        tokens=tokens)
    if spec.startswith(("http://", "https://")):
        return ToolRegistry.from_config({"search": "http"}, {"search": {"url": spec, "topk": topk}}, tokens=tokens)
    raise ValueError(f"--retriever must be bm25:CORPUS or http(s)://HOST:PORT, got {spec!r}")


def prompt_style(checkpoint: str, requested: str) -> str:
    """The prompt style to evaluate with: `requested`, or for "auto" the style of the coa_jax run that
    wrote `checkpoint` (its RUN/config.json, beside RUN/hf), else "file"."""
    if requested != "auto":
        return requested
    run_config = os.path.join(os.path.dirname(os.path.abspath(checkpoint)), "config.json")
    if os.path.isfile(run_config):
        with open(run_config, encoding="utf-8") as f:
            saved = json.load(f)
        style = saved.get("config", {}).get("world", {}).get("prompt_style") if isinstance(saved, dict) else None
        if style in ("compact", "reference"):
            return style
    return "file"


def restyle(items, style: str):
    """Items whose user prompt is rewritten in `style` from the question ("file": unchanged)."""
    import dataclasses

    from coa_jax.data.formats.messages import Message
    from coa_jax.data.world.prompt import user_prompt

    if style == "file":
        return items
    return [dataclasses.replace(item, messages=(Message("user", user_prompt(item.question, style)),)) for item in items]


def run(args: argparse.Namespace) -> int:
    import jax

    from coa_jax.config.schema import MeshConfig
    from coa_jax.models.loading import load_model
    from coa_jax.models.tokenizer import load_tokenizer
    from coa_jax.rollout.eval_data import load_eval_items
    from coa_jax.rollout.eval_metrics import format_table, report
    from coa_jax.rollout.evaluation import EvalSettings, evaluate
    from coa_jax.sharding.mesh import make_mesh
    from coa_jax.sharding.rules import SAMPLING_RULES, Sharder

    settings = EvalSettings(mode=args.mode, batch_slots=args.batch_slots, max_response_tokens=args.max_response_tokens,
                            max_actions=args.max_actions, answer_reserve=args.answer_reserve,
                            temperature=args.temperature, workflow_rounds=args.workflow_rounds, seed=args.seed)
    problems = settings.errors()
    if args.mode != "model-only" and not args.retriever:
        problems.append(("retriever", f"--mode {args.mode} needs --retriever"))
    if problems:
        for key, msg in problems:
            print(f"eval: {key}: {msg}", file=sys.stderr)
        return 2
    items = load_eval_items(args.data, split=args.split, limit=args.limit)
    if not items:
        print(f"eval: no questions in {args.data}", file=sys.stderr)
        return 2
    style = prompt_style(args.checkpoint, args.prompt_style)
    items = restyle(items, style)
    print(f"prompts: {style}" + (f" (--prompt-style auto: {args.checkpoint}'s run trained with it)"
                                 if args.prompt_style == "auto" and style != "file" else ""))
    devices = jax.devices()[:args.devices] if args.devices else jax.devices()
    sharder = Sharder(make_mesh(MeshConfig(data=len(devices)), devices), SAMPLING_RULES)
    cfg, params = load_model(args.checkpoint, sharder, dtype=args.dtype)
    tokenizer = load_tokenizer(args.tokenizer or args.checkpoint)
    registry = build_registry(args.retriever, tokenizer, args.topk) if args.retriever else None
    try:
        records, seconds = evaluate(cfg, params, sharder, tokenizer, items, settings, registry)
    finally:
        if registry is not None:
            registry.close()
    rep = report([r.scored for r in records])
    rep.update({"checkpoint": str(args.checkpoint), "data": str(args.data), "mode": args.mode, "prompt_style": style,
                "seconds": round(seconds, 2), "settings": vars(args)})
    print(format_table(rep))
    print(f"{len(records)} questions, {seconds:.1f} s")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(rep, f, indent=2)
    path = args.trajectories or (os.path.splitext(args.out)[0] + ".trajectories.jsonl" if args.out else None)
    if path:
        with open(path, "w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r.to_json(args.mode), ensure_ascii=False) + "\n")
        print(f"report: {args.out}; trajectories: {path}")
    return 0
