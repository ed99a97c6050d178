"""`python -m coa_jax world --out DIR [--seed S] [--size tiny|small|medium]`: build the embedded world.

Writes the search corpus, pretraining text, questions (JSONL and verl parquet), stats and the
tokenizer to DIR (see `coa_jax.data.world.build`). The same seed gives byte-identical files.
"""

from __future__ import annotations

import argparse
import json
import time

from coa_jax.data.world.sizes import SIZES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output directory (created if missing)")
    parser.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    parser.add_argument("--size", choices=sorted(SIZES), default="small", help="preset (default small)")
    parser.add_argument("--no-tokenizer", action="store_true", help="skip training the tokenizer")


def run(args: argparse.Namespace) -> int:
    from coa_jax.data.world.build import build_world

    start = time.perf_counter()
    stats = build_world(args.out, seed=args.seed, size=args.size, with_tokenizer=not args.no_tokenizer)
    q = stats["questions"]
    print(f"world seed={args.seed} size={args.size} -> {args.out} ({time.perf_counter() - start:.1f} s)")
    print(f"  entities {json.dumps(stats['entities'])}")
    print(f"  facts {stats['facts']['total']} {json.dumps(stats['facts']['by_tier'])}, "
          f"passages {stats['corpus']['passages']}, pretrain lines {stats['pretrain']['lines']}")  # fmt: skip
    print(f"  questions {q['total']} {json.dumps(q['by_split'])}, tokenizer vocab {stats['tokenizer']['vocab_size']}")
    return 0
