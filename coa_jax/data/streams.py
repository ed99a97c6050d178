"""Endless, deterministic, resumable streams of SFT and pair batches for the trainer.

    stream = SFTStream(examples, rows=8, length=1024, seed=0)   # packed [8, 1024] SFTBatches
    batch = next(stream)
    state = stream.get_state()                                 # a dict of ints -> checkpoint
    stream.set_state(state)                                    # resumes at the next example

The order comes from `coa_jax.data.tfds.iterate.ResumableIterator` (seeded, a new permutation
every epoch, sharded per process), so the whole state is the number of examples consumed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from coa_jax.data.collate import CollateStats, PairBatch, SFTBatch, batch_stats, collate_pairs, place_pairs
from coa_jax.data.packing import fill_rows
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
                 shard_index: int, shard_count: int):  # fmt: skip
        self.it = ResumableIterator(items, seed=seed, shuffle=shuffle, num_epochs=num_epochs,
                                    shard_index=shard_index, shard_count=shard_count)  # fmt: skip
        self.stats = CollateStats()

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
    """

    def __init__(self, examples: Sequence[TokenizedExample], *, rows: int, length: int, seed: int = 0,
                 shuffle: bool = True, num_epochs: int | None = None, shard_index: int = 0,
                 shard_count: int = 1):  # fmt: skip
        super().__init__(examples, seed=seed, shuffle=shuffle, num_epochs=num_epochs, shard_index=shard_index,
                         shard_count=shard_count)  # fmt: skip
        self.rows, self.length = rows, length

    def __next__(self) -> SFTBatch:
        taken, assignment = _take_first_fit(self.it, self.rows, self.length, len)
        if not taken:
            raise StopIteration
        cut = [ex.cut(self.length) for ex in taken]
        batch = SFTBatch(*fill_rows(cut, assignment, self.rows, self.length))
        self.stats = self.stats + batch_stats(cut, batch)
        return batch


class PairStream(_Stream):
    """Endless pair batches, deterministic and resumable.

    mode "bucket": `rows` pairs a batch, one a row, row length the next power of two of the
    longest (<= max_len). mode "pack": fixed [rows, max_len] rows holding up to `pairs_per_row`
    pairs each, first-fit in stream order (see `collate_pairs`).
    """

    def __init__(self, pairs: Sequence[TokenizedPair], *, rows: int, max_len: int, mode: str = "bucket",
                 pairs_per_row: int = 8, seed: int = 0, shuffle: bool = True, num_epochs: int | None = None,
                 shard_index: int = 0, shard_count: int = 1):  # fmt: skip
        if mode not in ("bucket", "pack"):
            raise ValueError(f"mode must be 'bucket' or 'pack', got {mode!r}")
        super().__init__(pairs, seed=seed, shuffle=shuffle, num_epochs=num_epochs, shard_index=shard_index,
                         shard_count=shard_count)  # fmt: skip
        self.rows, self.max_len, self.mode, self.pairs_per_row = rows, max_len, mode, pairs_per_row

    def __next__(self) -> PairBatch:
        if self.mode == "bucket":
            taken = self.it.next_batch(self.rows)
            if not taken:
                raise StopIteration
            batch, stats = collate_pairs(taken, max_len=self.max_len, rows=self.rows)
        else:
            taken, assignment = _take_first_fit(self.it, self.rows, self.max_len, _pair_size, self.pairs_per_row)
            if not taken:
                raise StopIteration
            batch, stats = place_pairs(taken, assignment, num_rows=self.rows, length=self.max_len,
                                       slots=self.pairs_per_row, max_len=self.max_len)  # fmt: skip
        self.stats = self.stats + stats
        return batch


def _pair_size(pair: TokenizedPair) -> int:
    return len(pair.context) + max(len(pair.chosen), len(pair.rejected))
