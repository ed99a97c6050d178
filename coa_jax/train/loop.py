"""The outer training loop shared by every stage: resume, checkpoints, metrics, signals, NaN budget.

A stage supplies `body(state, step) -> (state, metrics)`; everything that makes a run trustworthy
lives here once: automatic resume from the newest intact checkpoint (a damaged one is reported and
set aside, one of another model or stage refused; see `checkpoint`), with the data position saved
beside the state (RNG is a function of the step); keep-last-k async checkpoints whose failed writes
stop the run at once (`CheckpointWriteError`); SIGTERM (preemption) saves before exiting;
non-finite updates are skipped, logged with their step, and abort the run after `max_nan_skips`.
An optional spike guard (`spike_factor` > 0) logs a step whose `spike_metric` jumps above
`spike_factor` x its running mean and aborts after `max_spikes` such steps, before the spiked
state is saved.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import pathlib
import signal
import time
from collections.abc import Callable

import jax

from coa_jax.train.checkpoint import Checkpointer, abstract_with_shardings
from coa_jax.train.metrics import MetricsWriter

log = logging.getLogger(__name__)


class TrainingAborted(RuntimeError):
    """Too many non-finite updates or loss spikes (the message names the steps)."""


class Preempted(SystemExit):
    """SIGTERM arrived; a checkpoint was saved before exiting."""


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """Checkpointing and the run's guards.

    Attributes:
      save_every / keep_checkpoints / async_checkpoint: checkpoint cadence, how many to keep, async.
      max_nan_skips: non-finite updates (skipped by the step) tolerated before the run aborts.
      log_every: metrics are written every this many steps (and at the last).
      spike_factor: > 0 turns the spike guard on: a step whose `spike_metric` exceeds this factor
        times the running mean of the earlier steps' values is a spike (logged with its step).
      spike_metric: the metric watched (SFT: "loss"; GRPO, whose loss hovers around 0: "grad_norm").
      spike_warmup: steps of history before the guard judges.
      max_spikes: spikes tolerated; the next one aborts the run before its state is saved.
    """

    save_every: int = 50
    keep_checkpoints: int = 2
    async_checkpoint: bool = True
    max_nan_skips: int = 10
    log_every: int = 1
    spike_factor: float = 0.0
    spike_metric: str = "loss"
    spike_warmup: int = 10
    max_spikes: int = 3

    def errors(self) -> list[tuple[str, str]]:
        out = []
        if self.save_every <= 0:
            out.append(("save_every", f"must be > 0, got {self.save_every}"))
        if self.keep_checkpoints <= 0:
            out.append(("keep_checkpoints", f"must be > 0, got {self.keep_checkpoints}"))
        if self.max_nan_skips < 0:
            out.append(("max_nan_skips", f"must be >= 0, got {self.max_nan_skips}"))
        if self.log_every <= 0:
            out.append(("log_every", f"must be > 0, got {self.log_every}"))
        if self.spike_factor != 0 and not self.spike_factor > 1:
            out.append(("spike_factor", f"must be 0 (off) or > 1, got {self.spike_factor}"))
        if self.spike_warmup < 1:
            out.append(("spike_warmup", f"must be >= 1, got {self.spike_warmup}"))
        if self.max_spikes < 0:
            out.append(("max_spikes", f"must be >= 0, got {self.max_spikes}"))
        return out


class SpikeGuard:
    """Running mean of one metric; flags values above `factor` x the mean (its state is checkpointed)."""

    def __init__(self, cfg: LoopConfig, saved: dict | None = None):
        self.cfg = cfg
        saved = saved or {}
        self.mean, self.seen = saved.get("mean", 0.0), saved.get("seen", 0)
        self.steps: list[int] = list(saved.get("steps", []))

    def observe(self, step: int, metrics: dict) -> bool:
        """True when `step` is a spike; records it. Non-finite and spiked values do not move the mean."""
        value = metrics.get(self.cfg.spike_metric)
        if self.cfg.spike_factor <= 0 or value is None or not math.isfinite(value) or metrics.get("skipped", 0):
            return False
        if self.seen >= self.cfg.spike_warmup and value > self.cfg.spike_factor * max(self.mean, 1e-12):
            self.steps.append(step)
            return True
        self.seen += 1
        self.mean += (value - self.mean) / min(self.seen, 20)  # mean of the first 20, then an EMA
        return False

    def state(self) -> dict:
        return {"mean": self.mean, "seen": self.seen, "steps": self.steps}


@dataclasses.dataclass
class LoopResult:
    state: object
    final_step: int
    resumed_from: int | None
    nan_steps: list[int]


def run_loop(out_dir: str | pathlib.Path, state, total_steps: int, body: Callable, cfg: LoopConfig, *,
             meta: dict, model_dict: dict | None = None, progress: str = "train",
             get_data_state: Callable[[], dict] | None = None,
             set_data_state: Callable[[dict], None] | None = None) -> LoopResult:
    """Run `body` for steps [resume_step, total_steps), checkpointing into out_dir/checkpoints.

    get_data_state / set_data_state: the data stream's position, saved with every checkpoint and
    restored on resume (bodies whose data is a pure function of the step need neither).
    """
    out = pathlib.Path(out_dir)
    ckpt = Checkpointer(out / "checkpoints", keep=cfg.keep_checkpoints, async_save=cfg.async_checkpoint)
    metrics = MetricsWriter(out)
    start, resumed, nan_steps, spikes = 0, None, [], SpikeGuard(cfg)
    abstract = abstract_with_shardings(state, jax.tree.map(lambda x: x.sharding, state))
    try:
        restored = ckpt.restore(abstract, expect_model=model_dict, expect=meta)
    except BaseException:
        ckpt.close()
        metrics.close()
        raise
    if restored is not None:
        state, saved_meta, start = restored
        resumed = start
        nan_steps = list(saved_meta.get("nan_steps", []))
        spikes = SpikeGuard(cfg, saved_meta.get("spikes"))
        if set_data_state is not None and saved_meta.get("data") is not None:
            set_data_state(saved_meta["data"])
        log.info("resuming %s from step %d", out, start)
    metrics.rewind(start)
    stop = {"term": False}
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("term", True)) \
        if _main_thread() else None

    def save(step):
        data = get_data_state() if get_data_state is not None else None
        ckpt.save(step, state, {**meta, "step": step, "nan_steps": nan_steps, "spikes": spikes.state(),
                                "model": model_dict, "data": data})

    try:
        bar = _progress(total_steps, start, progress)
        for step in range(start, total_steps):
            t0 = time.perf_counter()
            state, m = body(state, step)
            m = {k: float(v) for k, v in jax.device_get(m).items()}
            if m.get("skipped", 0):
                nan_steps.append(step)
                log.warning("step %d: non-finite loss or gradient, update skipped (%d so far)", step, len(nan_steps))
                if len(nan_steps) > cfg.max_nan_skips:
                    raise TrainingAborted(f"{len(nan_steps)} non-finite updates (steps {nan_steps}) exceed "
                                          f"max_nan_skips={cfg.max_nan_skips}")
            if spikes.observe(step, m):
                m["spike"] = 1.0
                log.warning("step %d: %s %.4g is over %g x its running mean %.4g (spike %d)", step, cfg.spike_metric,
                            m[cfg.spike_metric], cfg.spike_factor, spikes.mean, len(spikes.steps))
                if len(spikes.steps) > cfg.max_spikes:
                    raise TrainingAborted(f"{len(spikes.steps)} {cfg.spike_metric} spikes (steps {spikes.steps}) "
                                          f"exceed max_spikes={cfg.max_spikes}; step {step}'s update was not "
                                          f"saved")
            ckpt.check()  # an async save that failed stops the run now, not at the end
            m["step_time_s"] = time.perf_counter() - t0
            if (step + 1) % cfg.log_every == 0 or step + 1 == total_steps:
                metrics.write(step + 1, m)
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: f"{m[k]:.4g}" for k in ("loss", "reward") if k in m})
            if (step + 1) % cfg.save_every == 0 or step + 1 == total_steps or stop["term"]:
                save(step + 1)
            if stop["term"]:
                ckpt.wait()
                log.warning("SIGTERM: checkpoint of step %d saved in %s; exiting (rerun the command to resume)",
                            step + 1, ckpt.directory)
                raise Preempted(143)
        ckpt.wait()
        (out / "DONE").write_text(json.dumps({"steps": total_steps, "nan_steps": nan_steps}))
        return LoopResult(state, total_steps, resumed, nan_steps)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        ckpt.close()
        metrics.close()


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _progress(total: int, start: int, desc: str):
    if jax.process_index() != 0:
        return None
    import sys

    from tqdm import tqdm

    return tqdm(total=total, initial=start, desc=desc, disable=not sys.stderr.isatty(), leave=False)
