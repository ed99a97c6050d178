"""The shared training loop under faults, with a toy body (no model, so each run takes a second).

SIGTERM mid-run saves the step it was in and exits 143; the rerun resumes with the data position
and nothing lost or repeated. Non-finite updates are skipped, logged with their step, remembered
across a resume and abort the run past `max_nan_skips`; the optional spike guard does the same
for spikes. A NaN in the gradients alone (finite loss) also skips the update.
"""

import json
import logging
import os
import pathlib
import signal

import numpy as np
import optax
import pytest

import jax
import jax.numpy as jnp

from coa_jax.train.loop import LoopConfig, TrainingAborted, run_loop
from coa_jax.train.step import init_train_state, make_train_step

STEPS = 8


class CountingStream:
    """A data stream whose position is saved with checkpoints: batch k is the number k."""

    def __init__(self):
        self.pos = 0

    def __next__(self) -> int:
        self.pos += 1
        return self.pos - 1

    def get_state(self) -> dict:
        return {"pos": self.pos}

    def set_state(self, state: dict) -> None:
        self.pos = state["pos"]


class ToyBody:
    """w <- 0.5 w + batch; metrics name the batch used, so a lost or repeated batch shows.

    nan_at: steps whose update is "non-finite" (skipped: state kept). spike_at: steps whose
    loss is 100x the others. hook(step): called inside the step (to signal or kill the process).
    """

    def __init__(self, nan_at=(), spike_at=(), hook=None):
        self.stream, self.nan_at, self.spike_at, self.hook = CountingStream(), set(nan_at), set(spike_at), hook

    def __call__(self, state, step):
        batch = next(self.stream)
        if self.hook is not None:
            self.hook(step)
        metrics = {"batch": batch, "loss": 100.0 if step in self.spike_at else 1.0 + 0.01 * (step % 3),
                   "skipped": int(step in self.nan_at)}
        if step in self.nan_at:
            return state, dict(metrics, loss=float("nan"))
        return {"w": state["w"] * 0.5 + batch, "n": state["n"] + 1}, metrics

    def get_state(self):
        return self.stream.get_state()

    def set_state(self, s):
        self.stream.set_state(s)


def toy_state():
    return {"w": jnp.arange(4096, dtype=jnp.float32).reshape(64, 64), "n": jnp.zeros((), jnp.int32)}


def run_toy(out, body, cfg=LoopConfig(save_every=3, keep_checkpoints=2, async_checkpoint=False), steps=STEPS,
            stage="toy"):
    return run_loop(out, toy_state(), steps, body, cfg, meta={"stage": stage}, progress="toy",
                    get_data_state=body.get_state, set_data_state=body.set_state)


def rows(out):
    out = [json.loads(line) for line in (pathlib.Path(out) / "metrics.jsonl").read_text().splitlines()]
    for r in out:
        r.pop("step_time_s")
    return out


def test_sigterm_saves_the_current_step_and_the_rerun_resumes_exactly(tmp_path):
    straight = run_toy(tmp_path / "straight", ToyBody())

    def sigterm_at_4(step):
        if step == 4:  # the handler only sets a flag: step 4 finishes, is saved, then the run exits
            os.kill(os.getpid(), signal.SIGTERM)

    out = tmp_path / "preempted"
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped:
        run_toy(out, ToyBody(hook=sigterm_at_4))
    assert stopped.value.code == 143
    # save_every=3 would have saved 3 and 6: the checkpoint at 5 exists only because of SIGTERM
    assert sorted(int(p.name) for p in (out / "checkpoints").iterdir()) == [3, 5]
    assert not (out / "DONE").exists() and [r["step"] for r in rows(out)] == [1, 2, 3, 4, 5]
    assert signal.getsignal(signal.SIGTERM) is before  # the loop's handler is gone again
    resumed = run_toy(out, ToyBody())
    assert resumed.resumed_from == 5 and (out / "DONE").exists()
    assert rows(out) == rows(tmp_path / "straight")  # batch k at step k: none lost, none repeated
    assert [r["batch"] for r in rows(out)] == list(range(STEPS))
    np.testing.assert_array_equal(np.asarray(resumed.state["w"]), np.asarray(straight.state["w"]))


def test_non_finite_updates_are_skipped_logged_remembered_and_abort(tmp_path, caplog):
    cfg = LoopConfig(save_every=2, keep_checkpoints=2, async_checkpoint=False, max_nan_skips=2)
    caplog.set_level(logging.WARNING, "coa_jax.train.loop")
    result = run_toy(tmp_path / "ok", ToyBody(nan_at={1, 4}), cfg)
    assert result.nan_steps == [1, 4] and int(result.state["n"]) == STEPS - 2  # skipped updates are not applied
    assert "step 1: non-finite" in caplog.text and "step 4: non-finite" in caplog.text
    logged = rows(tmp_path / "ok")
    assert [r["step"] for r in logged if r["skipped"]] == [2, 5] and logged[1]["loss"] == "nan"

    out = tmp_path / "abort"
    with pytest.raises(TrainingAborted, match=r"3 non-finite updates \(steps \[1, 4, 5\]\) exceed max_nan_skips=2"):
        run_toy(out, ToyBody(nan_at={1, 4, 5}), cfg)
    # the count survives a resume: one more bad step after restarting from step 4 aborts again
    assert json.loads((out / "checkpoints" / "4" / "meta" / "metadata").read_text())["nan_steps"] == [1]
    with pytest.raises(TrainingAborted, match=r"steps \[1, 4, 5\]"):
        run_toy(out, ToyBody(nan_at={4, 5}), cfg)


def test_spike_guard_logs_spikes_and_aborts_before_saving_them(tmp_path, caplog):
    caplog.set_level(logging.WARNING, "coa_jax.train.loop")
    off = run_toy(tmp_path / "off", ToyBody(spike_at={5, 6}))
    assert off.final_step == STEPS  # off by default
    cfg = LoopConfig(save_every=1, keep_checkpoints=8, async_checkpoint=False, spike_factor=5.0, spike_warmup=3,
                     max_spikes=1)
    out = tmp_path / "on"
    with pytest.raises(TrainingAborted, match=r"2 loss spikes \(steps \[5, 6\]\) exceed max_spikes=1"):
        run_toy(out, ToyBody(spike_at={5, 6}), cfg)
    assert "step 5: loss 100 is over 5 x its running mean" in caplog.text
    assert [r.get("spike", 0.0) for r in rows(out)] == [0, 0, 0, 0, 0, 1]
    assert max(int(p.name) for p in (out / "checkpoints").iterdir()) == 6  # step 6 (the 7th) was never saved
    assert LoopConfig(spike_factor=0.5).errors() == [("spike_factor", "must be 0 (off) or > 1, got 0.5")]


def test_nan_gradient_with_finite_loss_skips_the_update():
    """sqrt at 0: the loss is 0 but its gradient is inf * 0 = nan."""
    mesh = jax.make_mesh((1,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    params = {"w": jnp.asarray([0.0, 1.0])}
    shardings = {"w": replicated}
    opt = optax.sgd(0.1)
    state = init_train_state(jax.device_put(params, replicated), opt, shardings)

    def loss_fn(p, mb):
        return jnp.sum(jnp.sqrt(p["w"] * mb["x"])), jnp.float32(1.0), {}

    step = make_train_step(loss_fn, opt, jax.tree.map(lambda x: x.sharding, state), {"x": replicated})
    new, metrics = step(state, {"x": jnp.asarray([[1.0, 1.0]])})
    assert np.isfinite(float(metrics["loss"])) and not np.isfinite(float(metrics["grad_norm"]))
    assert int(metrics["skipped"]) == 1 and int(new.step) == 0
    np.testing.assert_array_equal(np.asarray(new.params["w"]), [0.0, 1.0])
