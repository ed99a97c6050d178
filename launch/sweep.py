#!/usr/bin/env python
"""Run a sweep declared in a config file: every member in its own output directory, then one
table comparing their results.json.

    python launch/sweep.py configs/sweep_quick.py --dry-run     # print each member's command
    python launch/sweep.py configs/sweep_quick.py               # run them here, one after another
    python launch/sweep.py configs/sweep_quick.py --launcher tpu_pod --tpu-zone us-east5-a --dry-run
    python launch/sweep.py configs/sweep_quick.py --collect-only   # just rebuild the table

Members whose results.json exists are not rerun (a stopped sweep resumes). Every member's config
is loaded and validated before anything runs. Writes OUT/sweep.md and OUT/sweep.json; exit 1 if
a member failed.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shlex
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coa_jax.config.errors import ConfigError  # noqa: E402
from coa_jax.sweep import collect, compare_json, compare_markdown, expand, load_sweep  # noqa: E402


def member_command(spec, member, out: pathlib.Path, args) -> list[str]:
    cli = [spec.command, "--config", spec.base]
    for s in member.sets:
        cli += ["--set", s]
    cli += ["--out", str(out / member.name), *spec.args]
    if args.launcher == "gpu_host":
        return ["launch/gpu_host.sh", *cli]
    if args.launcher == "tpu_pod":
        return ["launch/tpu_pod.sh", "--name", f"{args.tpu_name}-{member.index:02d}", "--zone", args.tpu_zone,
                "--type", args.tpu_type, "up", "--", *cli]
    return [sys.executable if not args.dry_run else "python", "-m", "coa_jax", *cli]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sweep", help="a config file with a SWEEP dict")
    p.add_argument("--out", default="", help="output root (default: the sweep's `out`, or runs/sweep-<name>)")
    p.add_argument("--dry-run", action="store_true", help="print the members' commands, run nothing")
    p.add_argument("--collect-only", action="store_true", help="only collect results.json into the table")
    p.add_argument("--launcher", choices=["local", "gpu_host", "tpu_pod"], default="local",
                   help="how each member is started (tpu_pod: print only)")
    p.add_argument("--tpu-name", default="coa-sweep", help="tpu_pod: name prefix (member k: PREFIX-kk)")
    p.add_argument("--tpu-zone", default="ZONE")
    p.add_argument("--tpu-type", default="v5p-16")
    args = p.parse_args(argv)
    try:
        spec = load_sweep(args.sweep)
        members = expand(spec)
        out = pathlib.Path(args.out or spec.out or f"runs/sweep-{pathlib.Path(args.sweep).stem}")
        if not args.collect_only:
            _validate(spec, members)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.launcher == "tpu_pod" and not args.dry_run and not args.collect_only:
        print("error: --launcher tpu_pod only prints the per-slice commands (add --dry-run)", file=sys.stderr)
        return 2
    status: dict[str, str] = {}
    if args.dry_run:
        print(f"# {len(members)} members of {args.sweep}, outputs under {out}/")
        for m in members:
            print(shlex.join(member_command(spec, m, out, args)))
        print(shlex.join(["python", "launch/sweep.py", args.sweep, "--out", str(out), "--collect-only"]))
        return 0
    if not args.collect_only:
        for m in members:
            if (out / m.name / "results.json").exists():
                status[m.name] = "done (earlier)"
                continue
            cmd = member_command(spec, m, out, args)
            print(f"[sweep] {m.index + 1}/{len(members)} {m.name}: {shlex.join(cmd)}", flush=True)
            t0 = time.perf_counter()
            rc = subprocess.run(cmd, cwd=ROOT).returncode
            status[m.name] = "done" if rc == 0 else f"failed (exit {rc})"
            print(f"[sweep] {m.name}: {status[m.name]} in {time.perf_counter() - t0:.0f}s", flush=True)
    records = collect(members, out, status)
    out.mkdir(parents=True, exist_ok=True)
    text = f"# Sweep {args.sweep} (base {spec.base})\n\n" + compare_markdown(records)
    (out / "sweep.md").write_text(text)
    (out / "sweep.json").write_text(json.dumps(compare_json(records), indent=2))
    print(text)
    print(f"table: {out / 'sweep.md'}, {out / 'sweep.json'}")
    return 0 if all(r["results"] is not None for r in records) else 1


def _validate(spec, members) -> None:
    """Load every member's config (overrides applied) before anything runs."""
    from coa_jax.config.loading import load_config

    problems = []
    for m in members:
        try:
            load_config(spec.base, m.sets)
        except ConfigError as err:
            problems += [(f"{m.name}: {key}", msg) for key, msg in err.problems]
    if problems:
        raise ConfigError(problems)


if __name__ == "__main__":
    raise SystemExit(main())
