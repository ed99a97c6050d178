#!/usr/bin/env python
"""Will this config fit? Compile its train and rollout steps for a TPU slice or a device count,
without the hardware, and print memory per device.

    python launch/aot_check.py --config configs/r1_distill_qwen_7b.py --topology v5p-16
    python launch/aot_check.py --config configs/r1_distill_qwen_7b.py:gpu8 --topology h100:8
    python launch/aot_check.py --config configs/default.py:tiny --topology cpu:8 --programs sft2,decode

With libtpu installed (`pip install libtpu==0.0.42.1`, the version jax[tpu]==0.10.2 pins) TPU
slices are compiled by the TPU compiler itself; otherwise (and for GPUs) XLA:CPU compiles the same
sharded programs for as many fake devices, and the output says so. Exit status: 0 fits, 3 does not
fit, 2 bad config/target.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coa_jax.runtime.targets import parse_target, tpu_compiler_available  # noqa: E402  (no JAX yet)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="config file[:variant]")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    p.add_argument("--topology", required=True, help="v5p-16, v4-32, v5e-16, v6e-8, h100:8, gpu:8, cpu:N or N")
    p.add_argument("--programs", default="", help="comma list (default: all): sft1,sft2,grpo,logprobs,prefill,decode")
    p.add_argument("--mode", choices=["tpu", "cpu"], default=None, help="force the compiler (default: tpu for a "
                                                                        "TPU slice when libtpu is installed)")
    p.add_argument("--lower-only", action="store_true", help="trace and lower only: check shardings, no memory")
    p.add_argument("--json", default="", help="also write the report here")
    args = p.parse_args(argv)
    try:
        target = parse_target(args.topology)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    mode = args.mode or ("tpu" if target.platform == "tpu" and tpu_compiler_available() else "cpu")
    _prepare_environment(target, mode)  # before JAX starts

    from coa_jax.config.errors import ConfigError
    from coa_jax.config.loading import load_config
    from coa_jax.runtime.aot import PROGRAMS, aot_check

    programs = tuple(x for x in args.programs.split(",") if x) or PROGRAMS
    unknown = sorted(set(programs) - set(PROGRAMS))
    if unknown:
        print(f"error: unknown programs {unknown}; choose from {PROGRAMS}", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config, args.set)
        report = aot_check(cfg, target, mode=mode, programs=programs, compile=not args.lower_only)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"config {args.config} ({cfg.name})")
    print(report.table())
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(report.to_dict(), indent=2))
    fits = report.fits()
    print({True: "fits", False: "DOES NOT FIT", None: "fit unknown (no HBM size or nothing compiled)"}[fits])
    return 3 if fits is False else 0


def _prepare_environment(target, mode: str) -> None:
    os.environ["JAX_PLATFORMS"] = "cpu"  # never initialise an accelerator: everything here is abstract
    if mode == "cpu":
        flags = re.sub(r"--xla_force_host_platform_device_count=\d+", "", os.environ.get("XLA_FLAGS", ""))
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={target.devices}".strip()
    else:  # libtpu asks the cloud metadata server who it is unless told; there is no TPU VM here
        os.environ.setdefault("TPU_SKIP_MDS_QUERY", "1")
        os.environ.setdefault("TPU_ACCELERATOR_TYPE", target.name)
        os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")


if __name__ == "__main__":
    raise SystemExit(main())
