"""Parameter pytrees: logical axes, shardings, sharded init, and the pure forward function.

State is never built whole on one device: `jax.eval_shape` gives shapes and logical axes, the
rules turn them into shardings, and a jitted init writes each shard straight to its device.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from coa_jax.models.decoder import CACHE_AXES, Decoder, KVCache, cache_shape, output_logits
from coa_jax.models.model_config import ModelConfig
from coa_jax.sharding.rules import Sharder

Params = dict  # nested dict of arrays, e.g. params["layers"]["attn"]["q_kernel"]: [L, E, H, D]


def _dummy_inputs():
    return jnp.zeros((1, 1), jnp.int32), jnp.zeros((1, 1), jnp.int32)


@functools.lru_cache(maxsize=32)
def _boxed_abstract(cfg: ModelConfig):
    return jax.eval_shape(lambda: Decoder(cfg).init(jax.random.key(0), *_dummy_inputs()))["params"]


def abstract_params(cfg: ModelConfig) -> Params:
    """ShapeDtypeStructs of every parameter (no memory allocated)."""
    return nn.unbox(_boxed_abstract(cfg))


def logical_axes(cfg: ModelConfig) -> Params:
    """The logical axis names of every parameter, as tuples, in the params' tree structure."""
    specs = nn.get_partition_spec(_boxed_abstract(cfg))
    return jax.tree.map(lambda s: tuple(s), specs, is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))


def param_shardings(cfg: ModelConfig, sharder: Sharder) -> Params:
    """NamedSharding for every parameter under the sharder's mesh and rules."""
    shapes = abstract_params(cfg)
    axes = logical_axes(cfg)
    return jax.tree.map(lambda names, s: sharder.sharding(names, s.shape), axes, shapes,
                        is_leaf=lambda x: isinstance(x, tuple))


def init_params(cfg: ModelConfig, sharder: Sharder, rng: jax.Array) -> Params:
    """Random init, created directly in its shardings."""
    shardings = param_shardings(cfg, sharder)

    @functools.partial(jax.jit, out_shardings=shardings)
    def _init(key):
        return nn.unbox(Decoder(cfg).init(key, *_dummy_inputs())["params"])

    return _init(rng)


def compute_dtype_params(cfg: ModelConfig, params: Params) -> Params:
    """Floating-point weights narrowed to the compute dtype (`cfg.dtype`) where it is narrower.

    The forward pass casts every weight to the compute dtype where it uses it, so it computes
    exactly the same numbers from these; a sampler that keeps them reads half the bytes per decode
    step in bfloat16 (decode is bound by reading the weights) and holds half the memory.
    Weights already as narrow are returned as they are.
    """
    target = jnp.dtype(cfg.dtype)
    return jax.tree.map(lambda x: x.astype(target) if _wider(x, target) else x, params)


def needs_narrowing(cfg: ModelConfig, params: Params) -> bool:
    """Whether `compute_dtype_params` would change any weight."""
    target = jnp.dtype(cfg.dtype)
    return any(_wider(x, target) for x in jax.tree.leaves(params))


def _wider(x, target) -> bool:
    return jnp.issubdtype(x.dtype, jnp.floating) and jnp.dtype(x.dtype).itemsize > target.itemsize


def cache_shardings(cfg: ModelConfig, sharder: Sharder, batch: int, length: int) -> KVCache:
    """The sharding of every layer's cache buffers (a KVCache of shardings)."""
    s = sharder.sharding(CACHE_AXES, cache_shape(cfg, batch, length))
    return KVCache((s,) * cfg.num_layers, (s,) * cfg.num_layers)


def forward(cfg: ModelConfig, params: Params, tokens_BxT, positions_BxT, *, segment_ids_BxT=None,
            cache: KVCache | None = None, sharder: Sharder | None = None, return_hidden: bool = False):
    """Pure forward pass: (logits [B, T, V] float32 or hidden [B, T, E], new cache or None)."""
    return Decoder(cfg, sharder).apply({"params": params}, tokens_BxT, positions_BxT,
                                       segment_ids_BxT=segment_ids_BxT, cache=cache, return_hidden=return_hidden)


def head_logits(cfg: ModelConfig, params: Params, hidden_BxTxE, sharder: Sharder | None = None):
    """float32 logits [B, T, V] of hidden states from `forward(..., return_hidden=True)`: lets a
    caller run the output head on the positions it needs only (a prefill needs the last one)."""
    return output_logits(cfg, hidden_BxTxE, params["embedding"], None if cfg.tie_embeddings else params["lm_head"],
                         sharder)


def count_params(cfg: ModelConfig) -> int:
    return sum(int(x.size) for x in jax.tree.leaves(abstract_params(cfg)))
