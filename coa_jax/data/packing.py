"""Where examples go in a batch: first-fit packing and power-of-two length buckets.

Packing puts several examples in one row, each its own segment (segment ids 1, 2, ... per row,
0 for padding; positions restart at 0 per segment), so a CPU step spends its work on tokens
rather than padding. Bucketing keeps one example per row and pads rows to the next power of two,
so the set of shapes (and of compiled programs) stays small.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from coa_jax.data.provenance import Provenance
from coa_jax.data.tokenize_sft import TokenizedExample


def bucket_length(n: int, *, minimum: int = 16, maximum: int | None = None) -> int:
    """The smallest power of two >= n (and >= minimum), capped at `maximum`."""
    size = minimum
    while size < n:
        size *= 2
    return min(size, maximum) if maximum is not None else size


def first_fit(lengths: Sequence[int], capacity: int, *, decreasing: bool = True, max_rows: int | None = None,
              max_items: int | None = None) -> tuple[list[list[int]], list[int]]:  # fmt: skip
    """Assigns items to rows of `capacity` tokens, each to the first row with room.

    Args:
      lengths: item sizes (each <= capacity: cut items first).
      capacity: tokens per row.
      decreasing: place longer items first (first-fit decreasing: fuller rows); ties keep order.
      max_rows: at most this many rows; items that fit in none are left over.
      max_items: at most this many items a row.

    Returns:
      (rows: item indices per row in placement order, left over item indices).

    Raises:
      ValueError: an item longer than the capacity.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i]) if decreasing else range(len(lengths))
    rows: list[list[int]] = []
    free: list[int] = []
    left: list[int] = []
    for i in order:
        n = lengths[i]
        if n > capacity:
            raise ValueError(f"item {i} has {n} tokens, more than a row's {capacity}")
        slot = next((r for r, room in enumerate(free)
                     if room >= n and (max_items is None or len(rows[r]) < max_items)), None)  # fmt: skip
        if slot is None and (max_rows is None or len(rows) < max_rows):
            rows.append([])
            free.append(capacity)
            slot = len(rows) - 1
        if slot is None:
            left.append(i)
            continue
        rows[slot].append(i)
        free[slot] -= n
    return rows, left


def fill_rows(examples: Sequence[TokenizedExample], rows: Sequence[Sequence[int]], num_rows: int,
              length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Writes examples into [num_rows, length] arrays: tokens, positions, segment ids, labels.

    Args:
      examples: the examples (each fits its row).
      rows: example indices per row (one row may hold several: segments 1, 2, ...).
      num_rows: rows in the batch (rows beyond `rows` are all padding).
      length: tokens per row.
    """
    tokens = np.zeros((num_rows, length), np.int32)
    positions = np.zeros((num_rows, length), np.int32)
    segments = np.zeros((num_rows, length), np.int32)
    labels = np.full((num_rows, length), int(Provenance.PAD), np.int8)
    for r, members in enumerate(rows):
        at = 0
        for seg, i in enumerate(members, start=1):
            ex = examples[i]
            n = len(ex)
            if at + n > length:
                raise ValueError(f"row {r} overflows: {at + n} tokens in a row of {length}")
            tokens[r, at : at + n] = ex.tokens
            positions[r, at : at + n] = np.arange(n, dtype=np.int32)
            segments[r, at : at + n] = seg
            labels[r, at : at + n] = ex.labels
            at += n
    return tokens, positions, segments, labels
