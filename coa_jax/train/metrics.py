"""Metrics: one JSON line per step (metrics.jsonl) and TensorBoard event files; process 0 only.

On resume the JSONL is rewound to the restored step, so a step is never logged twice and a
killed run's restart produces the same file as an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import pathlib

import jax


class MetricsWriter:
    def __init__(self, out_dir: str | pathlib.Path, *, tensorboard: bool = True):
        self.out_dir = pathlib.Path(out_dir)
        self.enabled = jax.process_index() == 0
        self.path = self.out_dir / "metrics.jsonl"
        self._tb = None
        if self.enabled:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            if tensorboard:
                from tensorboardX import SummaryWriter

                self._tb = SummaryWriter(str(self.out_dir / "tb"), flush_secs=30)

    def rewind(self, step: int) -> None:
        """Drop records of steps after `step` (written after the checkpoint we resume from)."""
        if not (self.enabled and self.path.exists()):
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    kept.append(line)
            except json.JSONDecodeError:  # a line cut by a kill mid-write
                continue
        self.path.write_text("".join(k + "\n" for k in kept))

    def write(self, step: int, metrics: dict, *, prefix: str = "") -> None:
        if not self.enabled:
            return
        record = {"step": int(step)}
        for k, v in metrics.items():
            v = float(v) if not isinstance(v, str) else v
            record[f"{prefix}{k}"] = v if isinstance(v, str) or math.isfinite(v) else str(v)
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, float):
                    self._tb.add_scalar(k, v, step)

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
