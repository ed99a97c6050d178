"""Run a GRPO stage end to end: prompts, rollout engine, reference model, loop, export.

    run_rl(cfg, "schedule", init="runs/sft123", out="runs/rl12")

env "sim": RL-1 (the policy writes observations itself), "real": RL-2 (the tool answers),
"schedule": simulated for the first `rl.sim_fraction` of the steps, then real, in one resumable run.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import jax

from coa_jax.config.errors import ConfigError
from coa_jax.config.loading import to_dict
from coa_jax.config.schema import Config
from coa_jax.env.rewards import get_reward
from coa_jax.models.params import param_shardings
from coa_jax.models.tokenizer import eos_ids
from coa_jax.rollout.engine import RolloutEngine
from coa_jax.runtime.placement import WeightSync, place_roles
from coa_jax.runtime.process import barrier, is_main, main_first
from coa_jax.sharding.mesh import validate_for_devices
from coa_jax.sharding.rules import SAMPLING_RULES, TRAINING_RULES, Sharder
from coa_jax.train import workspace
from coa_jax.train.grpo import GRPOBody, PromptSet, check_pod_split
from coa_jax.train.loop import run_loop
from coa_jax.train.metrics import MetricsWriter
from coa_jax.train.optimizer import make_optimizer
from coa_jax.train.reference import ReferenceModel
from coa_jax.train.stages import export_once
from coa_jax.train.step import init_train_state

RL_ENV_CHOICES = ("sim", "real", "schedule")


def run_rl(cfg: Config, env: str, *, init: str, out: str | pathlib.Path) -> pathlib.Path:
    """Train GRPO into `out` (resuming an unfinished run); returns OUT/hf."""
    if env not in RL_ENV_CHOICES:
        raise ValueError(f"env must be one of {RL_ENV_CHOICES}, got {env!r}")
    out = pathlib.Path(out)
    if (out / "DONE").exists() and (out / "hf" / "config.json").exists():
        return out / "hf"
    rl = dataclasses.replace(cfg.rl, env=env)
    meshes = place_roles(cfg.mesh, cfg.roles)
    validate_for_devices(cfg, meshes.policy.devices.size)
    train_sharder, sample_sharder = Sharder(meshes.policy, TRAINING_RULES), Sharder(meshes.rollout, SAMPLING_RULES)
    check_pod_split(rl.prompts_per_step, rl.group_size, rl.micro_batches)
    world = main_first("world", lambda: workspace.world_dir(cfg, out.parent))
    model_cfg, params, tokenizer = workspace.initial_model(cfg, init, train_sharder, world / "tokenizer")
    home = (None if meshes.reference is meshes.policy
            else param_shardings(model_cfg, Sharder(meshes.reference, TRAINING_RULES)))
    # frozen; the train state's copy is donated
    reference = ReferenceModel(params, offload=rl.ref_offload, home=home)
    prompt_ids, golds, _ = workspace.world_prompts(cfg, world, tokenizer, "train")
    check_prompt_lengths(prompt_ids, cfg.rollout.max_prompt_tokens)
    registry = workspace.build_registry(cfg, world, tokenizer)
    engine = RolloutEngine(model_cfg, sample_sharder, cfg.rollout, tokenizer, eos_ids=eos_ids(tokenizer),
                           registry=registry)
    optimizer = make_optimizer(rl.optim, rl.steps * rl.updates_per_batch, params)
    state = init_train_state(params, optimizer, param_shardings(model_cfg, train_sharder))
    body = GRPOBody(model_cfg, train_sharder, engine, reference, PromptSet(prompt_ids, golds), get_reward(rl.reward),
                    grpo=rl.grpo, optimizer=optimizer, state_shardings=jax.tree.map(lambda x: x.sharding, state),
                    group_size=rl.group_size, prompts_per_step=rl.prompts_per_step, total_steps=rl.steps, env=env,
                    sim_fraction=rl.sim_fraction, updates_per_batch=rl.updates_per_batch,
                    micro_batches=rl.micro_batches, normalize_std=rl.normalize_std,
                    filter_degenerate=rl.filter_degenerate, recompute_old_logprobs=rl.recompute_old_logprobs,
                    temperature=cfg.rollout.temperature, seed=cfg.seed, pad_id=tokenizer.pad_token_id or 0,
                    oversample=rl.oversample, sync=WeightSync(param_shardings(model_cfg, train_sharder), meshes.rollout))
    if is_main():
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps({"stage": f"rl-{env}", "init": init, "config": to_dict(cfg)},
                                                    indent=2))
    try:
        result = run_loop(out, state, rl.steps, body, rl.loop, meta={"stage": f"rl-{env}"},
                          model_dict=to_dict(model_cfg), progress=f"rl-{env}")
    finally:
        registry.close()
    if is_main():
        (out / "summary.json").write_text(json.dumps(run_summary(out), indent=2))
    barrier("summary")
    return export_once(out, result.state.params, model_cfg, tokenizer)


def check_prompt_lengths(prompt_ids, limit: int) -> None:
    """Refuse a training set holding a prompt the rollout cannot take, when the stage starts
    (the engine would refuse it only at the step that samples it).

    Raises:
      ConfigError: naming `rollout.max_prompt_tokens`, the first bad prompts' indices and lengths.
    """
    bad = [(i, len(ids)) for i, ids in enumerate(prompt_ids) if not 0 < len(ids) <= limit]
    if bad:
        shown = ", ".join(f"prompt {i} has {n} tokens" for i, n in bad[:3])
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        raise ConfigError([("rollout.max_prompt_tokens", f"{shown}{more}; the limit is {limit} and prompts "
                                                         f"must have 1..{limit} tokens")])


def run_summary(out: pathlib.Path) -> dict:
    """Totals over the run's metrics: real and simulated tool calls, failures, final reward."""
    rows = MetricsWriter(out, tensorboard=False).read()
    total = lambda k: float(sum(r.get(k, 0.0) for r in rows))  # noqa: E731
    return {"steps": len(rows), "real_tool_calls": total("real_tool_calls"),
            "simulated_tool_calls": total("simulated_tool_calls"), "tool_failures": total("tool_failures"),
            "final_reward": rows[-1].get("reward") if rows else None}
