"""The scripted teacher's numbers on a built world.

    python launch/teacher_report.py --world runs/world [--out runs/teacher] [--seed 0] [--style compact]
    python launch/teacher_report.py --world runs/world --splits dev test   # also score other splits

Writes the teacher data (CoT, CoA, CoT+A pairs, reasoner traces) for the train split to --out (a
temporary directory when not given) and prints: the world's corpus (passages by level) and its
held-out (dev/test) tail facts, CoA accuracy with the real search tool, CoT accuracy on popular
vs tail questions, row counts of each file, mean lengths in tokens, what was left out because it
would state a held-out fact. With --splits it also scores the teachers (no files) on those
splits, by dataset.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from coa_jax.data.teacher import score_split, write_teacher_data  # noqa: E402
from coa_jax.data.world import load_world  # noqa: E402


def split_table(world_dir: str, split: str, seed: int) -> str:
    """Per-dataset CoA accuracy and CoT accuracy by tier on `split`."""
    rows = score_split(load_world(world_dir), split, seed=seed)
    by = collections.defaultdict(lambda: collections.Counter())
    for q, cot_right, coa_right in rows:
        for key in (q.dataset, "all"):
            c = by[key]
            c["n"] += 1
            c["coa"] += coa_right
            c[f"n_{q.tier}"] += 1
            c[f"cot_{q.tier}"] += cot_right
    lines = [f"{split}: dataset   n   CoA    CoT popular   CoT tail"]
    for key in sorted(by, key=lambda k: (k == "all", k)):
        c = by[key]

        def rate(num: str, den: str) -> str:
            return f"{c[num] / c[den]:6.1%}" if c[den] else "     -"

        lines.append(f"  {key:<10} {c['n']:4d} {rate('coa', 'n')} {rate('cot_popular', 'n_popular')}"
                     f"({c['n_popular']:3d}) {rate('cot_tail', 'n_tail')}({c['n_tail']:3d})")  # fmt: skip
    return "\n".join(lines)


def world_line(world_dir: str) -> str:
    """The corpus size by passage level and the held-out tail facts, from the world's stats."""
    stats = load_world(world_dir).stats
    corpus, owner = stats["corpus"], stats["facts"].get("tail_by_owner_split", {})
    levels = corpus.get("passages_by_level", {})
    return (f"world: {corpus['passages']} passages ({', '.join(f'{k} level {v}' for k, v in levels.items())}); "
            f"tail facts owned by dev {owner.get('dev', 0)}, test {owner.get('test', 0)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", required=True, help="a directory written by `python -m coa_jax world`")
    parser.add_argument("--out", default=None, help="where to write the teacher data (default: a temp dir)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--style", default="compact", choices=("compact", "reference"))
    parser.add_argument("--splits", nargs="*", default=(), help="also score these splits (dev, test)")
    args = parser.parse_args(argv)
    print(world_line(args.world))
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or tmp
        stats = write_teacher_data(args.world, out, seed=args.seed, style=args.style)
        print(stats.summary())
        if args.out:
            print(f"written to {out}")
    for split in args.splits:
        print(split_table(args.world, split, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
