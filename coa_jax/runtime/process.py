"""Process-0 duties in a multi-process run: who logs and writes reports, barriers, main-first work.

Every process runs the same program; these helpers decide who does the things that must happen
once (a report, a file several processes would race on) and make the others wait for them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import jax
import numpy as np

T = TypeVar("T")


def is_main() -> bool:
    """True on process 0 (and in a single-process run)."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Block until every process reaches the barrier `name` (a no-op in a single-process run)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def main_first(name: str, fn: Callable[[], T]) -> T:
    """Run `fn` on process 0, then (after a barrier) on the others; returns fn's result everywhere.

    For idempotent set-up that writes shared files (build the world once, then everyone reads it).
    """
    if jax.process_count() == 1:
        return fn()
    if is_main():
        result = fn()
        barrier(name)
        return result
    barrier(name)
    return fn()


class MainProcessFilter(logging.Filter):
    """Lets process 0 log everything; other processes only warnings and errors, tagged `[pK]`."""

    def filter(self, record: logging.LogRecord) -> bool:
        index = jax.process_index() if jax.distributed.is_initialized() else 0
        if index == 0:
            return True
        if record.levelno < logging.WARNING:
            return False
        if not getattr(record, "_tagged", False):
            record.msg, record._tagged = f"[p{index}] {record.msg}", True
        return True


def install_log_filter(logger: logging.Logger | None = None) -> None:
    """Add the filter to every handler of `logger` (default: the root logger), once."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, MainProcessFilter) for f in handler.filters):
            handler.addFilter(MainProcessFilter())


def pod_reduce(values: dict[str, float], op: str) -> dict[str, float]:
    """`values` combined over every process ("sum" or "max"; float32); as is in a single process."""
    if op not in ("sum", "max"):
        raise ValueError(f"op must be 'sum' or 'max', got {op!r}")
    if jax.process_count() == 1:
        return dict(values)
    from jax.experimental import multihost_utils

    keys = sorted(values)
    gathered = np.asarray(multihost_utils.process_allgather(np.asarray([values[k] for k in keys], np.float32)))
    combined = gathered.sum(axis=0) if op == "sum" else gathered.max(axis=0)
    return {k: float(v) for k, v in zip(keys, combined)}
