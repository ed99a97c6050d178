"""Global batches from process-local rows: each process builds only the rows its devices hold.

    rows = process_rows(sharding, (A, B, T))          # which global rows (axis 1) this process holds
    local = {k: v[:, rows] ...}                        # built only for those rows, in that order
    batch = to_global(local, shardings, global_rows=B) # one jax.Array per leaf, spanning all processes
    back = local_rows(batch["x"])                      # the inverse: this process's rows, as numpy

The row a device holds follows from the batch's sharding, so this is right for any device order
and mesh (a process's rows need not be contiguous). In a single process nothing is converted.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import numpy as np
from jax.sharding import Sharding

BATCH_AXIS = 1  # batches are [microbatches, rows, ...]


def process_rows(sharding: Sharding, global_shape: tuple[int, ...], axis: int = BATCH_AXIS) -> list[int]:
    """Sorted indices along `axis` of the global array that this process's devices hold."""
    held: set[int] = set()
    for index in sharding.addressable_devices_indices_map(global_shape).values():
        held.update(range(*index[axis].indices(global_shape[axis])))
    return sorted(held)


def micro_rows(sharding: Sharding, micro_batches: int, rows: int, length: int) -> list[int]:
    """Rows of a [rows, length] stream batch this process builds, in the order that reshaping them
    to [micro_batches, -1, length] puts each in its place (row m*(rows/A) + r of microbatch m)."""
    per = rows // micro_batches
    held = process_rows(sharding, (micro_batches, per, length))
    return [m * per + r for m in range(micro_batches) for r in held]


def to_global(arrays: Mapping[str, np.ndarray], shardings: Mapping[str, Sharding], *, global_rows: int,
              axis: int = BATCH_AXIS) -> dict[str, jax.Array]:
    """Process-local leaves (rows `process_rows(...)` along `axis`, in order) -> global jax.Arrays.

    A single process returns the arrays unchanged (jit places them by its in_shardings).
    """
    if jax.process_count() == 1:
        return dict(arrays)
    out = {}
    for key, local in arrays.items():
        shape = local.shape[:axis] + (global_rows,) + local.shape[axis + 1:]
        sharding = shardings[key]
        where = {g: i for i, g in enumerate(process_rows(sharding, shape, axis))}
        if len(where) != local.shape[axis]:
            raise ValueError(f"{key}: this process holds {len(where)} rows of {shape}, got {local.shape[axis]}")

        def block(index, local=local, where=where):
            rows = [where[g] for g in range(*index[axis].indices(global_rows))]
            picked = np.take(local, rows, axis=axis)
            return picked[tuple(slice(None) if d == axis else s for d, s in enumerate(index))]

        out[key] = jax.make_array_from_callback(shape, sharding, block)
    return out


def local_rows(array: jax.Array, axis: int = BATCH_AXIS) -> np.ndarray:
    """This process's rows (in `process_rows` order along `axis`) of a global array, as numpy: the
    inverse of `to_global`. A single process gets the whole array."""
    if jax.process_count() == 1:
        return np.asarray(array)
    rows = process_rows(array.sharding, array.shape, axis)
    where = {g: i for i, g in enumerate(rows)}
    out = np.empty(array.shape[:axis] + (len(rows),) + array.shape[axis + 1:], array.dtype)
    for shard in array.addressable_shards:
        index = list(shard.index)
        index[axis] = [where[g] for g in range(*shard.index[axis].indices(array.shape[axis]))]
        out[tuple(index)] = np.asarray(shard.data)
    return out
