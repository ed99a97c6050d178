"""A peer (the PyTorch side of a benchmark) in a child process, driven over a pipe.

PyTorch's OpenMP threads and XLA's thread pools would compete if they lived in one process;
in a child, the peer's threads sleep while ours run and the other way round. The child builds
its runner with `factory(spec)` (a module-level function, so `spawn` can import it), reports
"ready" or its error, then answers each request `i` with `runner(i)` (a `harness.Sample`
measured in the child, so CPU seconds are the child's own).
"""

from __future__ import annotations

import importlib
import multiprocessing
import traceback

from coa_jax.bench.harness import Sample


def _worker(conn, factory_path: str, spec: dict, threads: int) -> None:
    from coa_jax import host_defaults

    host_defaults.apply()  # the same process defaults as ours (glibc malloc), before torch starts threads
    try:
        import torch

        torch.set_num_threads(threads)
        module, name = factory_path.split(":")
        runner = getattr(importlib.import_module(module), name)(spec)
    except Exception:  # noqa: BLE001 - reported to the parent, which decides
        conn.send(("error", traceback.format_exc()))
        return
    conn.send(("ready", getattr(runner, "info", {})))
    while (request := conn.recv()) is not None:
        try:
            conn.send(("ok", runner(request)))
        except Exception:  # noqa: BLE001
            conn.send(("error", traceback.format_exc()))


class PeerError(RuntimeError):
    """The peer could not be built or failed during a run (the message holds its traceback)."""


class PeerProcess:
    """`PeerProcess("coa_jax.bench.t1_sft:torch_runner", spec, threads)(i) -> Sample`."""

    def __init__(self, factory_path: str, spec: dict, threads: int):
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, factory_path, spec, threads), daemon=True)
        self.proc.start()
        status, payload = self.conn.recv()
        if status != "ready":
            self.proc.join(timeout=10)
            raise PeerError(payload)
        self.info = payload

    def __call__(self, i: int) -> Sample:
        self.conn.send(i)
        status, payload = self.conn.recv()
        if status != "ok":
            raise PeerError(payload)
        return payload

    def close(self) -> None:
        if self.proc.is_alive():
            self.conn.send(None)
            self.proc.join(timeout=30)
