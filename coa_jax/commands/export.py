"""`python -m coa_jax export --run DIR [--step N] [--out HFDIR]`: one checkpoint of a run as a Hugging Face directory.

A stage exports only its final weights (RUN/hf); this writes any kept checkpoint step. The run's
train state is rebuilt abstractly (the model config saved with the checkpoint, the stage's
optimizer from RUN/config.json), step N is restored into it on this machine's devices, and its
params are written with the run's tokenizer. The checkpoint directory is opened read-only, so a
run still training there is not disturbed.
"""

from __future__ import annotations

import argparse
import pathlib


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="a run directory written by `sft` or `rl` (config.json, checkpoints/)")
    p.add_argument("--step", type=int, default=None, help="the checkpoint step to export (default: the newest)")
    p.add_argument("--out", default="", help="the Hugging Face directory to write (default: RUN/export-step-N); "
                                             "must not exist yet")


def run(args: argparse.Namespace) -> int:
    import logging
    import sys

    from coa_jax.commands.sft import quiet_logging

    quiet_logging(logging)
    run_dir = pathlib.Path(args.run)
    if args.out and pathlib.Path(args.out).exists():
        print(f"error: {args.out} already exists; remove it or choose another --out", file=sys.stderr)
        return 2
    step, out = export_run(run_dir, step=args.step, out=args.out or None)
    print(f"step {step} of {run_dir} exported to {out}")
    return 0


def export_run(run_dir: str | pathlib.Path, *, step: int | None = None,
               out: str | pathlib.Path | None = None) -> tuple[int, pathlib.Path]:
    """Write checkpoint `step` (default: the newest) of the run in `run_dir` to `out`.

    Returns:
      (the step, the Hugging Face directory written).

    Raises:
      FileNotFoundError: no RUN/config.json, no checkpoints, or no tokenizer for the run.
      UnavailableStep: the step is not kept or does not restore intact (names the steps there are).
      IncompatibleCheckpoint: the checkpoint does not fit the run's config.
    """
    import json

    import jax

    from coa_jax.config.loading import from_dict
    from coa_jax.config.schema import Config, MeshConfig
    from coa_jax.models.model_config import ModelConfig
    from coa_jax.models.tokenizer import load_tokenizer
    from coa_jax.sharding.mesh import make_mesh
    from coa_jax.sharding.rules import TRAINING_RULES, Sharder
    from coa_jax.train import workspace
    from coa_jax.train.checkpoint import Checkpointer, UnavailableStep

    run_dir = pathlib.Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no config.json)")
    record = json.loads((run_dir / "config.json").read_text())
    cfg, stage, init = from_dict(Config, record["config"]), record["stage"], record.get("init", "")
    ckpt = Checkpointer(run_dir / "checkpoints", read_only=True)
    try:
        steps = ckpt.steps()
        if step is None:
            if not steps:
                raise UnavailableStep(f"{ckpt.directory} holds no checkpoint")
            step = steps[-1]
        meta = ckpt.read_meta(step)
        if not isinstance(meta.get("model"), dict):
            raise UnavailableStep(f"checkpoint step {step} in {ckpt.directory} records no model config")
        model_cfg = from_dict(ModelConfig, meta["model"])
        # all local devices on one fsdp axis: each process holds a slice, export fetches a tensor at a time
        sharder = Sharder(make_mesh(MeshConfig(data=1, fsdp=-1, tensor=1), jax.local_devices()), TRAINING_RULES)
        abstract = abstract_train_state(model_cfg, stage_optim(cfg, stage), sharder)
        state, _, _ = ckpt.restore(abstract, expect_model=meta["model"], expect={"stage": stage}, step=step)
    finally:
        ckpt.close()
    tokenizer = load_tokenizer(workspace.run_tokenizer_path(cfg, init, run_dir))
    out = pathlib.Path(out) if out else run_dir / f"export-step-{step}"
    return step, workspace.export_complete(state.params, model_cfg, out, tokenizer)


def stage_optim(cfg, stage: str):
    """The optimizer config of a run's stage ("sftreasoner", "sft1".."sft3", "rl-<env>").

    Raises:
      CheckpointError: an unknown stage name.
    """
    from coa_jax.models.tensor_sources import CheckpointError
    from coa_jax.train.stages import SFT_STAGES, stage_config

    if stage.startswith("sft") and stage[3:] in SFT_STAGES:
        return stage_config(cfg, stage[3:]).optim
    if stage.startswith("rl-"):
        return cfg.rl.optim
    raise CheckpointError(f"the run's config.json names an unknown stage {stage!r}")


def abstract_train_state(model_cfg, optim, sharder):
    """The TrainState a stage builds (params, optimizer state, step) as ShapeDtypeStructs carrying
    `sharder`'s shardings: a restore target that allocates nothing before the restore."""
    import jax
    import jax.numpy as jnp

    from coa_jax.models.params import abstract_params, param_shardings
    from coa_jax.train.checkpoint import abstract_with_shardings
    from coa_jax.train.optimizer import make_optimizer
    from coa_jax.train.step import TrainState, optimizer_shardings

    params = abstract_params(model_cfg)
    shardings = param_shardings(model_cfg, sharder)
    optimizer = make_optimizer(optim, 1, params)  # the step count shapes the schedule, not the state
    opt_state = jax.eval_shape(optimizer.init, params)
    state = TrainState(params=params, opt_state=opt_state, step=jax.ShapeDtypeStruct((), jnp.int32))
    state_shardings = TrainState(params=shardings, opt_state=optimizer_shardings(opt_state, params, shardings),
                                 step=sharder.replicated())
    return abstract_with_shardings(state, state_shardings)
