"""`python -m coa_jax sft --stage {reasoner,1,2,3}`: one supervised stage (resumes an unfinished --out)."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stage", required=True, choices=["reasoner", "1", "2", "3"],
                   help="reasoner: the base model; 1: CoT+A contrastive; 2: CoA/CoT with observations masked; "
                        "3: the same data with observations included")
    p.add_argument("--config", default=None, help="config file[:variant] (default: the embedded default)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    p.add_argument("--init", default="", help="starting weights: HF dir, GGUF file or a coa_jax run dir "
                                              "(default: the config's `init`; empty = random)")
    p.add_argument("--data", default="", help="directory with CoT_data.jsonl, CoA_data.jsonl, CoT+A_data.json "
                                              "(default: the teacher's data for the world)")
    p.add_argument("--out", required=True, help="run directory (an unfinished run there is resumed)")


def run(args: argparse.Namespace) -> int:
    import logging

    from coa_jax.config.loading import load_config
    from coa_jax.train.stages import run_sft

    quiet_logging(logging)
    cfg = load_config(args.config or default_config(), args.set)
    hf = run_sft(cfg, args.stage, init=args.init or cfg.init, out=args.out, data=args.data)
    print(f"stage sft-{args.stage} done: weights in {hf}")
    return 0


def quiet_logging(logging) -> None:
    """INFO for coa_jax, WARNING for chatty libraries."""
    from coa_jax.runtime.process import install_log_filter

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    install_log_filter()  # in a multi-process run only process 0 logs below WARNING
    for noisy in ("bm25s", "absl", "jax", "orbax", "httpx", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def default_config() -> str:
    import pathlib

    return str(pathlib.Path(__file__).resolve().parents[2] / "configs" / "default.py")
