"""Deterministic, resumable iteration over a random-access source.

The whole state is one integer, the number of records this process has consumed. Record number
p is `ds[p]` of a grain `MapDataset` built from the source: shuffled with the seed (a new
permutation every epoch), repeated, and sliced for this process (`[shard_index::shard_count]`),
so any position can be computed without replaying the ones before it. A checkpoint saves
`get_state()` (a dict of ints) and `set_state` resumes at exactly the next record.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Generic, Protocol, TypeVar

import grain

T = TypeVar("T")


class RandomAccess(Protocol[T]):
    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> T: ...


class ResumableIterator(Generic[T]):
    """Iterates records of a source in a seeded order; state = position (records consumed).

    Args:
      source: anything with `__len__` and `__getitem__` (a `QASource`, a list of examples).
      seed: the shuffle seed.
      shuffle: shuffle (a different permutation every epoch) or keep the source order.
      num_epochs: epochs before StopIteration (None: forever).
      shard_index / shard_count: this process's share (process k of K reads every K-th record of
        the global order), so hosts read disjoint records in step.
      position: where to start (0, or a restored state's position).

    Raises:
      ValueError: an empty source or a bad shard.
    """

    def __init__(self, source: RandomAccess[T], *, seed: int = 0, shuffle: bool = True,
                 num_epochs: int | None = None, shard_index: int = 0, shard_count: int = 1,
                 position: int = 0):  # fmt: skip
        if len(source) == 0:
            raise ValueError("cannot iterate over an empty source")
        if not 0 <= shard_index < shard_count:
            raise ValueError(f"shard_index must be in [0, {shard_count}), got {shard_index}")
        self.seed, self.shuffle, self.num_epochs = seed, shuffle, num_epochs
        self.shard_index, self.shard_count = shard_index, shard_count
        self.source_len = len(source)
        ds = grain.MapDataset.source(source)
        if shuffle:
            ds = ds.shuffle(seed=seed)
        ds = ds.repeat(num_epochs)
        self._ds = ds[shard_index::shard_count]
        self.position = position

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self.num_epochs is not None and self.position >= len(self._ds):
            raise StopIteration
        record = self._ds[self.position]
        self.position += 1
        return record

    def peek(self) -> T:
        """The next record, without consuming it."""
        if self.num_epochs is not None and self.position >= len(self._ds):
            raise StopIteration
        return self._ds[self.position]

    def next_batch(self, n: int) -> list[T]:
        """Up to `n` records (fewer only at the end of the last epoch)."""
        out = []
        for _ in range(n):
            try:
                out.append(next(self))
            except StopIteration:
                break
        return out

    @property
    def epoch(self) -> int:
        """The epoch of the next record (0-based, in the global order)."""
        return (self.position * self.shard_count + self.shard_index) // self.source_len

    def get_state(self) -> dict[str, int]:
        """What a checkpoint saves: the position, plus the settings it is only valid with."""
        return {"position": self.position, "seed": self.seed, "shuffle": int(self.shuffle),
                "shard_index": self.shard_index, "shard_count": self.shard_count, "source_len": self.source_len}

    def set_state(self, state: dict[str, Any]) -> None:
        """Resumes at `state["position"]`.

        Raises:
          ValueError: the state was saved with another seed, order, sharding or source size.
        """
        mine = self.get_state()
        for key in ("seed", "shuffle", "shard_index", "shard_count", "source_len"):
            if key in state and int(state[key]) != mine[key]:
                raise ValueError(f"iterator state has {key}={state[key]}, this iterator {mine[key]}")
        self.position = int(state["position"])
