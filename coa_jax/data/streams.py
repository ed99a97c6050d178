"""Endless, deterministic, resumable streams of SFT and pair batches for the trainer.

    stream = SFTStream(examples, rows=8, length=1024, seed=0)   # packed [8, 1024] SFTBatches
    batch = next(stream)
    state = stream.get_state()                                 # a dict of ints -> checkpoint
    stream.set_state(state)                                    # resumes at the next example

The order comes from `coa_jax.data.tfds.iterate.ResumableIterator` (seeded, a new permutation
every epoch), so the whole state is the number of examples consumed.

Multi-host: every process plans the same global batch (which examples, which row each goes to:
a function of the seeded order and the example lengths only) and builds only the rows its devices
hold (`local_rows`), so the global batch, and the loss, do not depend on the process count, and
every process's stream state is the same (one checkpoint entry serves all).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from coa_jax.data.collate import CollateStats, PairBatch, SFTBatch, batch_stats, place_pairs
from coa_jax.data.packing import bucket_length, fill_rows
from coa_jax.data.tfds.iterate import ResumableIterator
from coa_jax.data.tokenize_pairs import TokenizedPair
from coa_jax.data.tokenize_sft import TokenizedExample


def _take_first_fit(it: ResumableIterator, rows: int, length: int, size: Callable[[Any], int],
                    max_items: int | None = None) -> tuple[list[Any], list[list[int]]]:  # fmt: skip
    """Consumes items into `rows` rows of `length`, each into the first row with room, until the
    next item fits no row (it stays for the next batch); returns (items, indices per row)."""
    taken: list[Any] = []
    assignment: list[list[int]] = [[] for _ in range(rows)]
    free = [length] * rows
    while True:
        try:
            n = min(size(it.peek()), length)
        except StopIteration:
            break
        slot = next((r for r, room in enumerate(free)
                     if room >= n and (max_items is None or len(assignment[r]) < max_items)), None)  # fmt: skip
        if slot is None:
            break
        assignment[slot].append(len(taken))
        taken.append(next(it))
        free[slot] -= n
    return taken, assignment


class _Stream:
    """The resumable part shared by the streams: a seeded ResumableIterator and running stats."""

    def __init__(self, items: Sequence[Any], *, seed: int, shuffle: bool, num_epochs: int | None,
                 shard_index: int, shard_count: int, rows: int, local_rows: Sequence[int] | None):  # fmt: skip
        self.it = ResumableIterator(items, seed=seed, shuffle=shuffle, num_epochs=num_epochs,
                                    shard_index=shard_index, shard_count=shard_count)  # fmt: skip
        self.stats = CollateStats()
        self.rows = rows
        self.local_rows = list(range(rows)) if local_rows is None else list(local_rows)
        if any(not 0 <= r < rows for r in self.local_rows):
            raise ValueError(f"local_rows must lie in [0, {rows}), got {self.local_rows}")

    def _mine(self, assignment: list[list[int]]) -> list[list[int]]:
        """This process's rows of a global row assignment (rows past the assignment are empty)."""
        return [assignment[r] if r < len(assignment) else [] for r in self.local_rows]

    def __iter__(self):
        return self

    def get_state(self) -> dict[str, int]:
        """The position in the seeded order (and the settings it is valid with)."""
        return self.it.get_state()

    def set_state(self, state: dict[str, Any]) -> None:
        self.it.set_state(state)


class SFTStream(_Stream):
    """Endless fixed-shape packed SFT batches [rows, length], deterministic and resumable.

    Examples come in a seeded order; each goes into the first row with room; the batch is
    emitted when the next example fits no row (it opens the next batch). Longer examples are cut
    to `length` (counted in `stats`). With `num_epochs` set, the stream ends after them.
    `local_rows`: the rows of each [rows, length] batch to build, in this order (default: all);
    a batch then has len(local_rows) rows.
    """

    def __init__(self, examples: Sequence[TokenizedExample], *, rows: int, length: int, seed: int = 0,
                 shuffle: bool = True, num_epochs: int | None = None, shard_index: int = 0,
                 shard_count: int = 1, local_rows: Sequence[int] | None = None):  # fmt: skip
        super().__init__(examples, seed=seed, shuffle=shuffle, num_epochs=num_epochs, shard_index=shard_index,
                         shard_count=shard_count, rows=rows, local_rows=local_rows)  # fmt: skip
        self.length = length

    def __next__(self) -> SFTBatch:
        taken, assignment = _take_first_fit(self.it, self.rows, self.length, len)
        if not taken:
            raise StopIteration
        cut = [ex.cut(self.length) for ex in taken]
        mine = self._mine(assignment)
        batch = SFTBatch(*fill_rows(cut, mine, len(mine), self.length))
        self.stats = self.stats + batch_stats([cut[i] for row in mine for i in row], batch)
        return batch


class PairStream(_Stream):
    """Endless pair batches, deterministic and resumable.

    mode "bucket": `rows` pairs a batch, one a row, row length the next power of two of the
    longest (<= max_len). mode "pack": fixed [rows, max_len] rows holding up to `pairs_per_row`
    pairs each, first-fit in stream order (see `collate_pairs`).
    `local_rows` as in SFTStream (the bucket length is the whole global batch's).
    """

    def __init__(self, pairs: Sequence[TokenizedPair], *, rows: int, max_len: int, mode: str = "bucket",
                 pairs_per_row: int = 8, seed: int = 0, shuffle: bool = True, num_epochs: int | None = None,
                 shard_index: int = 0, shard_count: int = 1, local_rows: Sequence[int] | None = None):  # fmt: skip
        if mode not in ("bucket", "pack"):
            raise ValueError(f"mode must be 'bucket' or 'pack', got {mode!r}")
        super().__init__(pairs, seed=seed, shuffle=shuffle, num_epochs=num_epochs, shard_index=shard_index,
                         shard_count=shard_count, rows=rows, local_rows=local_rows)  # fmt: skip
        self.max_len, self.mode, self.pairs_per_row = max_len, mode, pairs_per_row

    def __next__(self) -> PairBatch:
        if self.mode == "bucket":  # one pair a row, as collate_pairs(mode="bucket") places them
            taken = self.it.next_batch(self.rows)
            if not taken:
                raise StopIteration
            assignment, slots = [[i] for i in range(len(taken))], 1
            width = bucket_length(max(_pair_size(p) for p in taken), maximum=self.max_len)
        else:
            taken, assignment = _take_first_fit(self.it, self.rows, self.max_len, _pair_size, self.pairs_per_row)
            if not taken:
                raise StopIteration
            slots, width = self.pairs_per_row, self.max_len
        mine = self._mine(assignment)
        batch, stats = place_pairs(taken, mine, num_rows=len(mine), length=width, slots=slots,
                                   max_len=self.max_len)  # fmt: skip
        self.stats = self.stats + stats
        return batch


def _pair_size(pair: TokenizedPair) -> int:
    return len(pair.context) + max(len(pair.chosen), len(pair.rejected))
