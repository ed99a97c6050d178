"""Interrupted stage commands resume to exactly the result of an uninterrupted run.

SFT-1 (contrastive pairs, in-process): SIGTERM inside step 3 saves that step and exits 143; the
same directory refuses another stage's command, naming the mismatch; the rerun finishes with the
metrics and weights of an uninterrupted run. (SIGKILL mid SFT-2: tests/test_train_resume.py.)

GRPO on the sim->real schedule: SIGTERM in the middle of step 1's rollout (simulated), then
SIGKILL in the middle of step 2's update (the first real step; in a subprocess, this file being the
driver, see `_main`), then a clean rerun: metrics, weights and summary equal an uninterrupted run.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys

import numpy as np
import pytest
import safetensors.numpy

ROOT = pathlib.Path(__file__).resolve().parents[1]
if __name__ == "__main__":  # run as the driver: make the package importable without PYTHONPATH
    sys.path.insert(0, str(ROOT))

TINY = ["--config", "configs/default.py:tiny", "--set", "world.size=tiny"]
SFT1 = ["sft", "--stage", "1", "--set", "sft1.steps=5", "--set", "sft1.batch_rows=8", "--set", "sft1.max_len=256",
        "--set", "sft1.loop.save_every=100"]
RL = ["rl", "--env", "schedule", "--set", "rl.steps=4", "--set", "rl.prompts_per_step=2", "--set", "rl.group_size=4",
      "--set", "rl.sim_fraction=0.5", "--set", "rollout.max_prompt_tokens=128",
      "--set", "rollout.max_response_tokens=96", "--set", "rollout.batch_slots=8",
      "--set", "rollout.answer_reserve=16", "--set", "rollout.temperature=1.0",
      "--set", "rl.loop.save_every=3", "--set", "rl.reward=toy_length"]
VOLATILE = ("step_time_s", "rollout_tokens_per_s", "tool_latency_mean_s")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("reliability_resume")
    from coa_jax.data.world import build_world

    build_world(base / "world", seed=0, size="tiny")
    return base


def _metrics(out):
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in VOLATILE and not k.startswith("time_")} for r in rows]


def _weights_equal(a, b):
    wa = safetensors.numpy.load_file(str(a / "hf" / "model.safetensors"))
    wb = safetensors.numpy.load_file(str(b / "hf" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)


def _steps(out):
    return sorted(int(p.name) for p in (out / "checkpoints").iterdir() if p.name.isdigit())


@pytest.mark.slow
def test_sft_sigterm_saves_refuses_another_stage_and_resumes_exactly(world, monkeypatch, capsys):
    from coa_jax.cli import main
    from coa_jax.train import sft

    monkeypatch.chdir(ROOT)
    args = [*TINY, "--set", f"world.dir={world / 'world'}"]
    straight, out = world / "sft1_straight", world / "sft1_preempted"
    assert main([*SFT1, *args, "--out", str(straight)]) == 0
    call = sft.ContrastiveBody.__call__

    def sigterm_in_step_2(self, state, step):
        if step == 2:  # a real signal: the handler only sets a flag, step 2 completes and is saved
            os.kill(os.getpid(), signal.SIGTERM)
        return call(self, state, step)

    monkeypatch.setattr(sft.ContrastiveBody, "__call__", sigterm_in_step_2)
    with pytest.raises(SystemExit) as stopped:
        main([*SFT1, *args, "--out", str(out)])
    assert stopped.value.code == 143 and _steps(out) == [3] and not (out / "DONE").exists()
    monkeypatch.setattr(sft.ContrastiveBody, "__call__", call)
    capsys.readouterr()
    assert main(["sft", "--stage", "2", *args, "--out", str(out)]) == 2  # not a silent continuation
    assert "stage: checkpoint has 'sft1', this run is 'sft2'" in capsys.readouterr().err
    assert main([*SFT1, *args, "--out", str(out)]) == 0
    assert _metrics(out) == _metrics(straight) and [r["step"] for r in _metrics(out)] == [1, 2, 3, 4, 5]
    _weights_equal(out, straight)


def _driver(fault, out, world_dir):
    """The command in a subprocess (same 8 fake devices as this process, so the same programs)."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, __file__, fault, *RL, *TINY, "--set", f"world.dir={world_dir}", "--out", str(out)]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_grpo_sigterm_mid_rollout_then_sigkill_mid_update_across_the_switch(world, monkeypatch):
    from coa_jax.cli import main
    from coa_jax.env.rewards import register_reward

    monkeypatch.chdir(ROOT)
    register_reward("toy_length", toy_length, overwrite=True)
    args = [*RL, *TINY, "--set", f"world.dir={world / 'world'}"]
    straight, out = world / "rl_straight", world / "rl_interrupted"
    assert main([*args, "--out", str(straight)]) == 0
    undo = install_fault("TERM@rollout:1")  # a real SIGTERM, sent from another thread mid-rollout
    try:
        with pytest.raises(SystemExit) as stopped:
            main([*args, "--out", str(out)])
    finally:
        undo()
    assert stopped.value.code == 143
    assert _steps(out) == [2] and [r["step"] for r in _metrics(out)] == [1, 2]  # save_every=3: only SIGTERM's
    killed = _driver("KILL@update:2", out, world / "world")  # SIGKILL mid-update of the first real step
    assert killed.returncode == -signal.SIGKILL and "from step 2" in killed.stderr, killed.stderr[-3000:]
    assert _steps(out) == [2] and not (out / "DONE").exists()
    assert main([*args, "--out", str(out)]) == 0
    rows = _metrics(out)
    assert [r["env_real"] for r in rows] == [0.0, 0.0, 1.0, 1.0] and any(r["loss"] != 0 for r in rows)
    assert rows == _metrics(straight)
    _weights_equal(out, straight)
    assert json.loads((out / "summary.json").read_text()) == json.loads((straight / "summary.json").read_text())


def toy_length(solution, gold):
    """A reward a tiny random policy can earn (a function of the response length): non-zero
    advantages, so the updates change the weights and a lost or repeated step would show."""
    return (len(solution) % 7) / 6.0


def install_fault(fault: str):
    """Patch GRPO so that SIGNAL@PHASE:STEP (TERM or KILL; rollout or update) is sent to this process
    from another thread 50 ms into that phase of that step. Returns the function that undoes it."""
    import threading

    from coa_jax.rollout.engine import RolloutEngine
    from coa_jax.train import grpo

    name, where = fault.split("@")
    phase, at = where.split(":")
    sig = {"TERM": signal.SIGTERM, "KILL": signal.SIGKILL}[name]
    current = {"step": -1}

    def during(work):
        if current["step"] != int(at):
            return work()
        timer = threading.Timer(0.05, os.kill, (os.getpid(), sig))
        timer.start()
        result = work()
        timer.join()  # the signal is in before the phase ends
        return result

    body_call, rollout, train_step = grpo.GRPOBody.__call__, RolloutEngine.rollout, grpo.GRPOBody._train_step

    def body_call_(self, state, step):
        current["step"] = step
        return body_call(self, state, step)

    def rollout_(self, *a, **k):
        return during(lambda: rollout(self, *a, **k)) if phase == "rollout" else rollout(self, *a, **k)

    def train_step_(self, length):
        step_fn = train_step(self, length)
        return (lambda state, batch: during(lambda: step_fn(state, batch))) if phase == "update" else step_fn

    grpo.GRPOBody.__call__, RolloutEngine.rollout, grpo.GRPOBody._train_step = body_call_, rollout_, train_step_

    def undo():
        grpo.GRPOBody.__call__, RolloutEngine.rollout, grpo.GRPOBody._train_step = body_call, rollout, train_step

    return undo


def _main(argv):
    """Driver: `python tests/test_reliability_resume.py FAULT <coa_jax command args>` (FAULT: "none"
    or SIGNAL@PHASE:STEP, see `install_fault`); registers the `toy_length` reward."""
    from coa_jax.cli import main
    from coa_jax.env.rewards import register_reward

    register_reward("toy_length", toy_length)
    if argv[0] != "none":
        install_fault(argv[0])
    return main(argv[1:])


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
