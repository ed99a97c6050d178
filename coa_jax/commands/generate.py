"""`python -m coa_jax generate`: sample from a checkpoint (HF directory or GGUF file)."""

from __future__ import annotations

import argparse
import json
import math


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="Hugging Face directory or .gguf file")
    p.add_argument("--prompt", required=True)
    p.add_argument("--max-new-tokens", type=int, default=None, help="default: the config's sampling.max_new_tokens")
    p.add_argument("--greedy", action="store_true", help="argmax decoding (the default when no temperature)")
    p.add_argument("--temperature", type=float, default=None, help="0 = greedy (default without --config)")
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--chat", action="store_true", help="wrap the prompt in the checkpoint's chat template")
    p.add_argument("--system", default=None, help="system message (with --chat)")
    p.add_argument("--json", action="store_true", help="print one JSON object (prompt_ids, output_ids, text, ...)")
    p.add_argument("--tokenizer", default=None, help="tokenizer directory (default: the checkpoint's)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--tools", default=None,
                   help="run one agent trajectory with a search tool: bm25:CORPUS_JSONL, http://HOST:PORT, or "
                        "world_model (the model writes its own observations)")
    p.add_argument("--max-actions", type=int, default=10, help="with --tools: the action budget T")
    p.add_argument("--topk", type=int, default=3, help="with --tools: documents per search")
    p.add_argument("--config", default=None, help="config file[:variant] for mesh and sampling defaults")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")


def run(args: argparse.Namespace) -> int:
    import jax

    from coa_jax.config.loading import load_config
    from coa_jax.models.loading import load_model
    from coa_jax.models.tokenizer import encode_prompt, eos_ids, load_tokenizer
    from coa_jax.rollout.generate import generate
    from coa_jax.rollout.sampling import SamplingParams
    from coa_jax.sharding.mesh import make_mesh
    from coa_jax.sharding.rules import SAMPLING_RULES, Sharder

    flags = {"temperature": 0.0 if args.greedy else args.temperature, "top_p": args.top_p, "top_k": args.top_k,
             "max_new_tokens": args.max_new_tokens, "seed": args.seed}
    overrides = list(args.set) + [f"sampling.{k}={v}" for k, v in flags.items() if v is not None]
    if args.config is None and args.temperature is None:
        overrides.insert(0, "sampling.temperature=0")
    cfg_run = load_config(args.config, overrides)
    s = cfg_run.sampling
    mesh = make_mesh(cfg_run.mesh)
    sharder = Sharder(mesh, SAMPLING_RULES)
    cfg, params = load_model(args.checkpoint, sharder, dtype=args.dtype)
    tokenizer = load_tokenizer(args.tokenizer or args.checkpoint)
    prompt_ids = encode_prompt(tokenizer, args.prompt, chat=args.chat, system=args.system)
    if args.tools:
        from coa_jax.rollout.watch import run_agent

        return run_agent(args, cfg, params, sharder, tokenizer, prompt_ids,
                         SamplingParams(s.temperature, s.top_p, s.top_k), max_new_tokens=s.max_new_tokens, seed=s.seed)
    stops = [[t] for t in eos_ids(tokenizer)]
    batch_multiple = math.prod(mesh.shape[a] for a in ("data", "fsdp"))
    (gen,) = generate(cfg, params, sharder, [prompt_ids], max_new_tokens=s.max_new_tokens,
                      sampling=SamplingParams(s.temperature, s.top_p, s.top_k), rng=jax.random.key(s.seed),
                      stop_sequences=stops, batch_multiple=batch_multiple)
    text = tokenizer.decode(gen.output_ids, skip_special_tokens=False)
    if args.json:
        print(json.dumps({"prompt_ids": gen.prompt_ids, "output_ids": gen.output_ids, "text": text,
                          "logprobs": gen.logprobs, "stopped": "eos" if gen.stop_index >= 0 else "max_new_tokens"}))
    else:
        print(text)
    return 0
