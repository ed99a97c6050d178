"""`python -m coa_jax pipeline`: the whole recipe on the embedded world, Table 1 rows, reports."""

from __future__ import annotations

import argparse

QUICK_EVAL_LIMIT = 4  # test questions per dataset in a --quick run


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="config file[:variant] (default: configs/default.py, "
                                                  "or configs/default.py:quick with --quick)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    p.add_argument("--quick", action="store_true", help="a small world and short stages (minutes)")
    p.add_argument("--out", default="runs/pipeline", help="output directory (a rerun resumes)")
    p.add_argument("--eval-limit", type=int, default=None,
                   help=f"test questions per dataset (default: all; {QUICK_EVAL_LIMIT} with --quick)")


def run(args: argparse.Namespace) -> int:
    import logging
    import pathlib

    from coa_jax.commands.sft import default_config, quiet_logging
    from coa_jax.config.loading import load_config
    from coa_jax.pipeline.report import write_markdown, write_plots
    from coa_jax.pipeline.runner import run_pipeline

    quiet_logging(logging)
    spec = args.config or (default_config() + (":quick" if args.quick else ""))
    cfg = load_config(spec, args.set)
    out = pathlib.Path(args.out if not (args.quick and args.out == "runs/pipeline") else "runs/pipeline-quick")
    limit = args.eval_limit if args.eval_limit is not None else (QUICK_EVAL_LIMIT if args.quick else None)
    results = run_pipeline(cfg, out, settings=cfg.eval, eval_limit=limit)
    text = write_markdown(results, out / "results.md")
    write_plots(results, out)
    print(text)
    print(f"results: {out / 'results.json'}, {out / 'results.md'}; plots in {out}")
    return 0
