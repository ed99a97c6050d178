"""Alternating timing, summaries and the compile counter shared by every benchmark.

Ours and the peer run in turn (A B A B ..., the order rotated each round) after their warm-ups,
so a slow drift of a shared machine hits both alike and cancels in their ratio. Each run reports
wall seconds and, where it can, the CPU seconds of its process (on a machine shared with other
jobs, CPU time shows the work done; wall time also holds the waiting).
"""

from __future__ import annotations

import contextlib
import dataclasses
import resource
import statistics
import time
from collections.abc import Callable

import jax


@dataclasses.dataclass(frozen=True)
class Sample:
    """One timed run: wall and process CPU seconds, and what it produced (e.g. tokens)."""

    wall_s: float
    cpu_s: float = float("nan")
    work: float = 0.0


def process_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn: Callable[[], float | None]) -> Sample:
    """Run fn (which must block until its results are ready); fn may return the work it did."""
    c0, t0 = process_cpu_s(), time.perf_counter()
    work = fn()
    return Sample(time.perf_counter() - t0, process_cpu_s() - c0, float(work or 0.0))


@dataclasses.dataclass(frozen=True)
class Summary:
    """Median and spread (min, max, interquartile range) of a setup's runs."""

    median_s: float
    min_s: float
    max_s: float
    iqr_s: float
    cpu_median_s: float
    work: float
    runs: int

    @staticmethod
    def of(samples: list[Sample]) -> Summary:
        walls = sorted(s.wall_s for s in samples)
        q = statistics.quantiles(walls, n=4) if len(walls) >= 2 else [walls[0]] * 3
        cpus = [s.cpu_s for s in samples if s.cpu_s == s.cpu_s]
        return Summary(statistics.median(walls), walls[0], walls[-1], q[2] - q[0],
                       statistics.median(cpus) if cpus else float("nan"),
                       statistics.median(s.work for s in samples), len(samples))


def alternate(runners: dict[str, Callable[[int], Sample]], repeats: int, *, warmup: int = 1,
              counter: CompileCounter | None = None,
              log: Callable[[str], None] | None = print) -> dict[str, list[Sample]]:
    """Warm every runner up, then run them in rotated order `repeats` times (runner(i) -> Sample).

    `counter`, if given, counts the compilations after the warm-up (there should be none).
    """
    names = list(runners)
    for name in names:
        for i in range(warmup):
            runners[name](-1 - i)
    out: dict[str, list[Sample]] = {n: [] for n in names}
    with counter or contextlib.nullcontext():
        _rounds(runners, names, repeats, out, log)
    return out


def _rounds(runners, names, repeats, out, log) -> None:
    for rep in range(repeats):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            s = runners[name](rep)
            out[name].append(s)
            if log:
                log(f"  rep {rep} {name:<28} {s.wall_s * 1e3:9.1f} ms wall {s.cpu_s * 1e3:9.1f} ms cpu")


class CompileCounter:
    """Counts XLA compilations (and their seconds) in this process, via jax.monitoring events.

    Every new executable, including a persistent-cache hit, emits one backend-compile event.
        with CompileCounter() as cc: ...; cc.count, cc.seconds, cc.names (the jitted functions)
    """

    EVENT = "/jax/core/compile/backend_compile_duration"

    def __init__(self):
        self.count, self.seconds, self.names, self.durations, self._on = 0, 0.0, [], [], False
        jax.monitoring.register_event_duration_secs_listener(self._listen)

    def _listen(self, event: str, duration: float, **kwargs) -> None:
        if self._on and event == self.EVENT:
            self.count += 1
            self.seconds += duration
            self.names.append(str(kwargs.get("fun_name", "?")))
            self.durations.append(duration)

    def __enter__(self) -> CompileCounter:
        self.count, self.seconds, self.names, self.durations, self._on = 0, 0.0, [], [], True
        return self

    def __exit__(self, *exc) -> None:
        self._on = False


def format_table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """Fixed-width table: columns are (key, header, format spec); missing values print as '-'."""
    def cell(row, key, spec):
        v = row.get(key)
        if v is None or (isinstance(v, float) and v != v):
            return "-"
        return format(v, spec) if spec else str(v)

    cells = [[h for _, h, _ in columns]] + [[cell(r, k, s) for k, _, s in columns] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
             for line in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths)] + lines[1:])
