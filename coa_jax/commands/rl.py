"""`python -m coa_jax rl --env {sim,real,schedule}`: GRPO (resumes an unfinished --out)."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", required=True, choices=["sim", "real", "schedule"],
                   help="sim: the policy simulates observations (RL-1); real: the tool answers (RL-2); "
                        "schedule: sim for the first rl.sim_fraction of the steps, then real")
    p.add_argument("--config", default=None, help="config file[:variant] (default: the embedded default)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    p.add_argument("--init", default="", help="starting weights: HF dir, GGUF file or a coa_jax run dir")
    p.add_argument("--out", required=True, help="run directory (an unfinished run there is resumed)")


def run(args: argparse.Namespace) -> int:
    import json
    import logging

    from coa_jax.commands.sft import default_config, quiet_logging
    from coa_jax.config.loading import load_config
    from coa_jax.train.rl_stage import run_rl

    quiet_logging(logging)
    cfg = load_config(args.config or default_config(), args.set)
    hf = run_rl(cfg, args.env, init=args.init or cfg.init, out=args.out)
    summary = json.loads((hf.parent / "summary.json").read_text())
    print(f"stage rl-{args.env} done: weights in {hf}; real tool calls {summary['real_tool_calls']:.0f}")
    return 0
