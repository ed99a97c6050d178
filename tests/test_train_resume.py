"""A training run killed with SIGKILL mid-way and restarted ends exactly like an uninterrupted run."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import safetensors.numpy

ROOT = pathlib.Path(__file__).resolve().parents[1]
STEPS = 8


def _cmd(out):
    return [sys.executable, "-m", "coa_jax", "sft", "--stage", "2", "--config", "configs/default.py:tiny",
            "--set", "world.size=tiny", "--set", f"world.dir={out.parent / 'world'}", "--set", f"sft2.steps={STEPS}",
            "--set", "sft2.batch_rows=4", "--set", "sft2.max_len=256", "--set", "sft2.loop.save_every=2",
            "--set", "sft2.loop.async_checkpoint=false", "--out", str(out)]


def _env():
    return dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", PYTHONPATH=str(ROOT))


def _metrics(out):
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("step_time_s")
    return rows


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("resume")
    from coa_jax.data.world import build_world

    build_world(base / "world", seed=0, size="tiny")
    return base


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted(world):
    straight = world / "straight"
    subprocess.run(_cmd(straight), cwd=ROOT, env=_env(), check=True, capture_output=True)
    killed = world / "killed"
    proc = subprocess.Popen(_cmd(killed), cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (killed / "checkpoints" / "4").exists():
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "DONE").exists(), "the run finished before it could be killed"
    resumed = subprocess.run(_cmd(killed), cwd=ROOT, env=_env(), check=True, capture_output=True, text=True)
    assert "resuming" in resumed.stderr
    assert _metrics(killed) == _metrics(straight)
    a = safetensors.numpy.load_file(str(straight / "hf" / "model.safetensors"))
    b = safetensors.numpy.load_file(str(killed / "hf" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
