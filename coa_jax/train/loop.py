"""The outer training loop shared by every stage: resume, checkpoints, metrics, signals, NaN budget.

A stage supplies `body(state, step) -> (state, metrics)`; everything that makes a run trustworthy
lives here once: automatic resume from the newest good checkpoint (the data position and RNG are
functions of the step, so nothing else needs restoring), keep-last-k async checkpoints, SIGTERM
(preemption) saves before exiting, and non-finite updates are skipped, logged with their step,
and abort the run after `max_nan_skips`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
import signal
import time
from collections.abc import Callable

import jax

from coa_jax.train.checkpoint import Checkpointer, abstract_with_shardings
from coa_jax.train.metrics import MetricsWriter

log = logging.getLogger(__name__)


class TrainingAborted(RuntimeError):
    """Too many non-finite updates (the message names the steps)."""


class Preempted(SystemExit):
    """SIGTERM arrived; a checkpoint was saved before exiting."""


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    save_every: int = 50
    keep_checkpoints: int = 2
    async_checkpoint: bool = True
    max_nan_skips: int = 10
    log_every: int = 1

    def errors(self) -> list[tuple[str, str]]:
        out = []
        if self.save_every <= 0:
            out.append(("save_every", f"must be > 0, got {self.save_every}"))
        if self.keep_checkpoints <= 0:
            out.append(("keep_checkpoints", f"must be > 0, got {self.keep_checkpoints}"))
        if self.max_nan_skips < 0:
            out.append(("max_nan_skips", f"must be >= 0, got {self.max_nan_skips}"))
        return out


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
    start, resumed, nan_steps = 0, None, []
    abstract = abstract_with_shardings(state, jax.tree.map(lambda x: x.sharding, state))
    restored = ckpt.restore(abstract, expect_model=model_dict)
    if restored is not None:
        state, saved_meta, start = restored
        resumed = start
        nan_steps = list(saved_meta.get("nan_steps", []))
        if set_data_state is not None and saved_meta.get("data") is not None:
            set_data_state(saved_meta["data"])
        log.info("resuming %s from step %d", out, start)
    metrics.rewind(start)
    stop = {"term": False}
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__("term", True)) \
        if _main_thread() else None

    def save(step):
        data = get_data_state() if get_data_state is not None else None
        ckpt.save(step, state, {**meta, "step": step, "nan_steps": nan_steps, "model": model_dict, "data": data})

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
