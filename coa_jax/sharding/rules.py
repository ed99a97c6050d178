"""Logical axis names -> mesh axes, one small table per role.

Weights, activations and the KV cache are annotated with logical names where they are created
(`embed`, `mlp`, `heads`, `kv_heads`, `vocab`, `batch`, `length`, ...). A rules table maps each
name onto zero or more of the mesh axes `data`, `fsdp`, `tensor`. A dimension that the mapped
axes do not divide evenly is replicated instead (tiny models on many devices), never padded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")

Rules = tuple[tuple[str, tuple[str, ...]], ...]

# Training: FSDP shards weights along `embed`, tensor parallelism splits heads/mlp/vocab,
# the batch is split over data x fsdp.
TRAINING_RULES: Rules = (
    ("batch", ("data", "fsdp")),
    ("length", ()),
    ("embed", ("fsdp",)),
    ("vocab", ("tensor",)),
    ("heads", ("tensor",)),
    ("kv_heads", ("tensor",)),
    ("head_dim", ()),
    ("mlp", ("tensor",)),
    ("layers", ()),
    ("norm", ()),
    ("cache_length", ()),
)

# Sampling: weights are not FSDP-sharded (an all-gather per decode step would dominate);
# only tensor parallelism splits them. The KV cache follows batch and kv heads.
SAMPLING_RULES: Rules = (
    ("batch", ("data", "fsdp")),
    ("length", ()),
    ("embed", ()),
    ("vocab", ("tensor",)),
    ("heads", ("tensor",)),
    ("kv_heads", ("tensor",)),
    ("head_dim", ()),
    ("mlp", ("tensor",)),
    ("layers", ()),
    ("norm", ()),
    ("cache_length", ()),
)

ROLE_RULES = {"training": TRAINING_RULES, "sampling": SAMPLING_RULES}


def logical_to_spec(names: Sequence[str | None], shape: Sequence[int], mesh: Mesh, rules: Rules) -> PartitionSpec:
    """PartitionSpec for an array of `shape` whose dims carry logical `names`.

    Raises:
      KeyError: a logical name that the rules table does not know.
    """
    table = dict(rules)
    used: set[str] = set()
    spec = []
    for name, size in zip(names, shape, strict=True):
        if name is None:
            spec.append(None)
            continue
        if name not in table:
            raise KeyError(f"logical axis {name!r} has no rule; known: {sorted(table)}")
        axes = tuple(a for a in table[name] if a not in used and mesh.shape.get(a, 1) > 1)
        n = 1
        for a in axes:
            n *= mesh.shape[a]
        if not axes or size % n:
            spec.append(None)
            continue
        used.update(axes)
        spec.append(axes[0] if len(axes) == 1 else axes)
    return PartitionSpec(*spec)


@dataclasses.dataclass(frozen=True)
class Sharder:
    """A mesh plus one role's rules: turns logical names into shardings and constraints."""

    mesh: Mesh
    rules: Rules

    def spec(self, names: Sequence[str | None], shape: Sequence[int]) -> PartitionSpec:
        return logical_to_spec(names, shape, self.mesh, self.rules)

    def sharding(self, names: Sequence[str | None], shape: Sequence[int]) -> NamedSharding:
        return NamedSharding(self.mesh, self.spec(names, shape))

    def constrain(self, x: jax.Array, names: Sequence[str | None]) -> jax.Array:
        return jax.lax.with_sharding_constraint(x, self.sharding(names, x.shape))

    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, PartitionSpec())


def constrain(sharder: Sharder | None, x: jax.Array, names: Sequence[str | None]) -> jax.Array:
    """Sharding constraint on an activation; a no-op when no sharder is given (eager tests)."""
    return x if sharder is None else sharder.constrain(x, names)
