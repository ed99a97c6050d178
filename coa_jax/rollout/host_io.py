"""What the host loop sends to the device and receives from the tools, batched per iteration.

`RowWrites` gathers the control changes and token chunks of one host iteration so they reach the
device as one `control` and one `append` call. `ToolGroup` is one batch of actions submitted to the
registry together, collected when its future is done (or failed once it is overdue).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import time

import numpy as np

from coa_jax.env.registry import ToolRegistry, ToolResult
from coa_jax.env.tags import Action
from coa_jax.models.params import Params
from coa_jax.rollout.rows import RowRecord
from coa_jax.rollout.sampler import RowControl, Sampler, SamplerState


def bucket(n: int, minimum: int = 64) -> int:
    """Round up to a power of two (>= minimum) so distinct lengths share compiled programs."""
    size = minimum
    while size < n:
        size *= 2
    return size


class RowWrites:
    """Pending control changes and token chunks, per row.

    Args:
      batch: rows of the sampler.
      cache_len: the cache length (chunks never need more columns than that).
    """

    def __init__(self, batch: int, cache_len: int):
        self.batch, self.cache_len = batch, cache_len
        self.seeds = np.arange(batch, dtype=np.uint32)
        self._clear()

    def _clear(self) -> None:
        b = self.batch
        self.mask, self.reset, self.active = (np.zeros((b,), bool) for _ in range(3))
        self.limit, self.free = np.zeros((b,), np.int32), np.zeros((b,), np.int32)
        self.chunks: dict[int, list[int]] = {}

    @property
    def pending(self) -> bool:
        return bool(self.mask.any() or self.chunks)

    def set(self, slot: int, *, active: bool, limit: int, free: int, reset: bool = False,
            seed: int | None = None) -> None:
        """Set a row's control (reset: empty it first; seed: its random stream)."""
        self.mask[slot], self.active[slot], self.limit[slot], self.free[slot] = True, active, limit, free
        self.reset[slot] |= reset
        if seed is not None:
            self.seeds[slot] = np.uint32(seed & 0xFFFFFFFF)

    def append(self, slot: int, ids: list[int]) -> None:
        """Queue tokens for a row (after what is already queued for it)."""
        self.chunks.setdefault(slot, []).extend(ids)

    def flush(self, sampler: Sampler, params: Params, state: SamplerState,
              ends: dict[int, int]) -> tuple[SamplerState, int]:
        """Dispatch the pending control (first) and append calls; returns (state, tokens appended).

        Args:
          ends: slot -> the row's length once its chunk is appended (sizes the cache window).
        """
        appended = 0
        if self.mask.any():
            state = sampler.control(state, RowControl(self.mask, self.reset, self.active, self.limit, self.seeds,
                                                      self.free))
        if self.chunks:
            longest = max(len(ids) for ids in self.chunks.values())
            width = min(bucket(longest), max(self.cache_len, longest))
            tokens = np.zeros((self.batch, width), np.int32)
            n_valid = np.zeros((self.batch,), np.int32)
            for slot, ids in self.chunks.items():
                tokens[slot, :len(ids)] = ids
                n_valid[slot] = len(ids)
                appended += len(ids)
            window = sampler.window(max(ends[slot] for slot in self.chunks))
            state = sampler.append(params, state, tokens, n_valid, window=window)
        self._clear()
        return state, appended


@dataclasses.dataclass
class ToolGroup:
    """Actions of several rows submitted to the registry as one batch."""

    future: concurrent.futures.Future
    slots: list[int]
    records: list[RowRecord]
    actions: list[Action]
    submitted: float

    def results(self, registry: ToolRegistry, timeout_s: float) -> list[ToolResult] | None:
        """The results once done; failure results once overdue; None while still running."""
        overdue = time.perf_counter() - self.submitted > timeout_s
        if not self.future.done() and not overdue:
            return None
        try:
            if not self.future.done():
                raise TimeoutError(f"no answer within {timeout_s:.0f} s")
            return self.future.result()
        except Exception as error:  # a failed batch never stops the rollout: every call fails alone
            self.future.cancel()
            reason = f"{type(error).__name__}: {error}"
            return [registry[a.tool].failure_result(reason) for a in self.actions]

    def future_wait(self, timeout_s: float) -> None:
        """Block until this batch is done or `timeout_s` passed."""
        if timeout_s > 0:
            concurrent.futures.wait([self.future], timeout=timeout_s)

    @staticmethod
    def wait_any(groups: list["ToolGroup"], timeout_s: float) -> None:
        """Block until one group is done or the earliest deadline passes."""
        if not groups:
            return
        deadline = min(g.submitted for g in groups) + timeout_s
        concurrent.futures.wait([g.future for g in groups], timeout=max(deadline - time.perf_counter(), 0.0),
                                return_when=concurrent.futures.FIRST_COMPLETED)
