"""Loads every row of the reference parquet prompt files in strict mode and prints counts.

    python launch/check_reference_data.py [DIR]    # DIR defaults to ../shared/data/autocoa

Exits non-zero (with the file, row and reason) if any row does not parse.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from coa_jax.data.formats import DataError, read_verl_parquet  # noqa: E402

FILES = ("hotpotqa_train.parquet", "hotpotqa_dev.parquet", "eval_test.parquet")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", nargs="?", default=os.path.join(ROOT, "..", "shared", "data", "autocoa"))
    args = parser.parse_args(argv)
    total = 0
    for name in FILES:
        path = os.path.join(args.dir, name)
        try:
            result = read_verl_parquet(path, strict=True)
        except (DataError, FileNotFoundError) as error:
            print(f"FAIL {error}")
            return 1
        by_dataset = collections.Counter(p.dataset for p in result.rows)
        yes_no = sum(1 for p in result.rows if p.golds[0].strip().lower() in ("yes", "no"))
        multi = sum(1 for p in result.rows if len(p.golds) > 1)
        splits = sorted({p.split for p in result.rows})
        print(f"{name}: {len(result.rows)} rows, splits {splits}, yes/no golds {yes_no}, multi-gold {multi}")
        for dataset, count in sorted(by_dataset.items()):
            print(f"  {dataset:10s} {count}")
        total += len(result.rows)
    print(f"all rows parsed in strict mode: {total}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
