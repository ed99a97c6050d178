"""Stage commands end to end on the tiny world: SFT-1 contrastive, then GRPO on the sim->real schedule."""

import json
import math
import os
import pathlib

import pytest

from coa_jax.cli import main

TINY = ["--config", "configs/default.py:tiny", "--set", "world.size=tiny"]
RL = ["--set", "rl.steps=2", "--set", "rl.prompts_per_step=2", "--set", "rl.group_size=4", "--set",
      "rl.sim_fraction=0.5", "--set", "rollout.max_prompt_tokens=128", "--set", "rollout.max_response_tokens=96",
      "--set", "rollout.batch_slots=8", "--set", "rollout.answer_reserve=16", "--set", "rollout.temperature=1.0"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    os.chdir(pathlib.Path(__file__).resolve().parents[1])
    return tmp_path_factory.mktemp("stages")


@pytest.mark.slow
def test_sft1_contrastive_stage_runs_and_exports(base):
    out = base / "sft1"
    assert main(["sft", "--stage", "1", *TINY, "--set", "sft1.steps=3", "--set", "sft1.batch_rows=8",
                 "--set", "sft1.max_len=256", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(0.0 <= r["pair_accuracy"] <= 1.0 and r["count"] > 0 for r in rows)
    assert (out / "DONE").exists() and (out / "hf" / "model.safetensors").exists()


@pytest.mark.slow
def test_sft1_anchored_to_its_initial_model_starts_every_pair_at_zero(base):
    out = base / "sft1_reference"
    assert main(["sft", "--stage", "1", *TINY, "--set", "sft1.steps=2", "--set", "sft1.batch_rows=8",
                 "--set", "sft1.max_len=256", "--set", "sft1.contrastive.reference=true", "--out", str(out)]) == 0
    first = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    # the likelihoods differ, but the sigmoid sees them against the same (initial) model's
    assert abs(first["chosen_ll"] - first["rejected_ll"]) > 1e-3
    assert abs(first["pair_gap"]) < 1e-5
    alpha = 0.2
    assert first["contrastive"] == pytest.approx(math.log(2) - alpha * first["chosen_ll"], rel=1e-5)
    assert (out / "hf" / "model.safetensors").exists()


@pytest.mark.slow
def test_grpo_schedule_switches_from_simulated_to_real(base):
    out = base / "rl"
    assert main(["rl", "--env", "schedule", *TINY, *RL, "--out", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["env_real"] for r in rows] == [0.0, 1.0]
    assert rows[0]["real_tool_calls"] == 0.0  # the simulated step never calls the tool
    for r in rows:
        assert r["skipped"] == 0.0 and r["count"] > 0 and 0.0 <= r["reward"] <= 1.0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["real_tool_calls"] == rows[1]["real_tool_calls"]
    # rerunning a finished run does nothing and keeps its results
    assert main(["rl", "--env", "schedule", *TINY, *RL, "--out", str(out)]) == 0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2


@pytest.mark.slow
def test_grpo_with_the_rollout_on_its_own_devices(base):
    """roles: the sampler on the last 4 of 8 devices (its own data=4 mesh), the policy on the first
    4, the reference kept on the rollout's devices; weights cross over after every update."""
    out = base / "rl_roles"
    roles = ["--set", "roles.rollout_devices=4", "--set", "roles.rollout_mesh.data=4", "--set",
             "roles.reference=rollout"]
    assert main(["rl", "--env", "schedule", *TINY, *RL, *roles, "--out", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["env_real"] for r in rows] == [0.0, 1.0]
    assert all(r["skipped"] == 0.0 and r["count"] > 0 for r in rows)
    assert (out / "hf" / "model.safetensors").exists()
    # a rollout mesh that leaves the policy no device is refused by name
    bad = ["--set", "roles.rollout_devices=8"]
    assert main(["rl", "--env", "sim", *TINY, *RL, *bad, "--out", str(base / "rl_bad")]) == 2
