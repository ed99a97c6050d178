"""The decoder: one Flax (linen) code path for the Qwen2 and Llama families.

Shape legend (suffixes on array names):
  B batch rows   T tokens in this call   S KV-cache slots   E hidden size   V vocabulary
  H query heads  K kv heads   G = H // K   D head dim   F MLP width   L layers

Layers are stacked with `nn.scan` (parameters carry a leading `layers` axis), so compile time
does not grow with depth (small models on CPU unroll it, see `layer_unroll`). Two calling modes
share every line of the layer:
  * training: no cache; a packed/padded batch with `segment_ids` (0 = padding) and per-row
    `positions`; attention is causal within each segment.
  * cached: a KVCache whose slot index equals the token position. The chunk's k/v are scattered
    into slots `positions` (positions >= S are dropped, which is how padding tokens in an
    appended chunk leave the cache untouched) and queries attend to slots <= their position.
    Prefill, one-token decode and appending observations to chosen rows are all this mode. Each
    layer has its own cache buffers, [B, K, S, D], and cached calls loop over the layers in
    Python (the same stacked parameters, sliced): a layer writes its slots in place and attends
    over its buffer where it lies. (One [L, ...] buffer carried through the layer scan would be
    sliced per layer, and XLA:CPU materialises that slice: a copy of the cache every step, the
    cost that bounds decoding; [B, S, K, D] would be transposed for the matmuls: another.)
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from coa_jax.models import attention, rope
from coa_jax.models.linear import linear, linear_transposed
from coa_jax.models.model_config import ModelConfig
from coa_jax.sharding.rules import Sharder, constrain


class KVCache(NamedTuple):
    """Keys and values: one [B, K, S, D] array per layer in each tuple."""

    k: tuple[jax.Array, ...]
    v: tuple[jax.Array, ...]

    @property
    def length(self) -> int:
        return self.k[0].shape[2]

    def map(self, fn) -> KVCache:
        """`fn` applied to every layer's keys and values."""
        return KVCache(tuple(fn(a) for a in self.k), tuple(fn(a) for a in self.v))


CACHE_AXES = ("batch", "kv_heads", "cache_length", "head_dim")  # of each layer's buffer


def _dtype(name: str):
    return jnp.dtype(name)


def _param(module: nn.Module, name: str, init, shape, axes, cfg: ModelConfig):
    return module.param(name, nn.with_logical_partitioning(init, axes), shape, _dtype(cfg.param_dtype))


class RMSNorm(nn.Module):
    cfg: ModelConfig

    @nn.compact
    def __call__(self, x):
        scale = _param(self, "scale", nn.initializers.ones, (x.shape[-1],), ("norm",), self.cfg)
        x32 = x.astype(jnp.float32)
        y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.cfg.rms_norm_eps)
        dtype = _dtype(self.cfg.dtype)
        return y.astype(dtype) * scale.astype(dtype)


class Attention(nn.Module):
    cfg: ModelConfig
    sharder: Sharder | None = None

    @nn.compact
    def __call__(self, x_BxTxE, cos, sin, mask: attention.KeyMask, positions_BxT, cache_kv):
        cfg = self.cfg
        e, h, k, d = cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.resolved_head_dim
        dtype = _dtype(cfg.dtype)
        init = nn.initializers.normal(cfg.init_std)
        wq = _param(self, "q_kernel", init, (e, h, d), ("embed", "heads", "head_dim"), cfg)
        wk = _param(self, "k_kernel", init, (e, k, d), ("embed", "kv_heads", "head_dim"), cfg)
        wv = _param(self, "v_kernel", init, (e, k, d), ("embed", "kv_heads", "head_dim"), cfg)
        wo = _param(self, "o_kernel", init, (h, d, e), ("heads", "head_dim", "embed"), cfg)
        x = x_BxTxE.astype(dtype)
        q_BxTxHxD = linear(x, wq.astype(dtype))
        k_BxTxKxD = linear(x, wk.astype(dtype))
        v_BxTxKxD = linear(x, wv.astype(dtype))
        if cfg.qkv_bias:
            zeros = nn.initializers.zeros
            q_BxTxHxD = q_BxTxHxD + _param(self, "q_bias", zeros, (h, d), ("heads", "head_dim"), cfg).astype(dtype)
            k_BxTxKxD = k_BxTxKxD + _param(self, "k_bias", zeros, (k, d), ("kv_heads", "head_dim"), cfg).astype(dtype)
            v_BxTxKxD = v_BxTxKxD + _param(self, "v_bias", zeros, (k, d), ("kv_heads", "head_dim"), cfg).astype(dtype)
        q_BxTxHxD = rope.apply_rope(q_BxTxHxD, cos, sin)
        k_BxTxKxD = rope.apply_rope(k_BxTxKxD, cos, sin)
        q_BxTxHxD = constrain(self.sharder, q_BxTxHxD, ("batch", "length", "heads", "head_dim"))

        if cache_kv is None:
            out_BxTxHxD = attention.attend(q_BxTxHxD, k_BxTxKxD, v_BxTxKxD, mask, cfg.attention, causal=True)
            return linear(out_BxTxHxD, wo.astype(dtype), in_dims=2), None
        # write this chunk's k/v into this layer's [B, K, S, D] buffers in place, then attend over
        # them: queries see their own slot too
        ck_BxKxSxD, cv_BxKxSxD = cache_kv
        rows_BxT = jnp.broadcast_to(jnp.arange(x.shape[0])[:, None], positions_BxT.shape)
        # (the two index arrays around a slice put their [B, T] dims first: the update is [B, T, K, D])
        ck_BxKxSxD = ck_BxKxSxD.at[rows_BxT, :, positions_BxT].set(k_BxTxKxD.astype(ck_BxKxSxD.dtype),
                                                                     mode="drop")
        cv_BxKxSxD = cv_BxKxSxD.at[rows_BxT, :, positions_BxT].set(v_BxTxKxD.astype(cv_BxKxSxD.dtype),
                                                                     mode="drop")
        out_BxTxHxD = attention.cached_attend(q_BxTxHxD, ck_BxKxSxD.astype(dtype), cv_BxKxSxD.astype(dtype), mask,
                                              cfg.attention)
        return linear(out_BxTxHxD, wo.astype(dtype), in_dims=2), (ck_BxKxSxD, cv_BxKxSxD)


class MLP(nn.Module):
    cfg: ModelConfig

    @nn.compact
    def __call__(self, x_BxTxE):
        cfg = self.cfg
        dtype = _dtype(cfg.dtype)
        init = nn.initializers.normal(cfg.init_std)
        e, f = cfg.hidden_size, cfg.intermediate_size
        w_gate = _param(self, "gate_kernel", init, (e, f), ("embed", "mlp"), cfg).astype(dtype)
        w_up = _param(self, "up_kernel", init, (e, f), ("embed", "mlp"), cfg).astype(dtype)
        w_down = _param(self, "down_kernel", init, (f, e), ("mlp", "embed"), cfg).astype(dtype)
        x = x_BxTxE.astype(dtype)
        h_BxTxF = jax.nn.silu(linear(x, w_gate)) * linear(x, w_up)
        return linear(h_BxTxF, w_down)


class DecoderLayer(nn.Module):
    cfg: ModelConfig
    sharder: Sharder | None = None

    @nn.compact
    def __call__(self, carry, cos, sin, mask: attention.KeyMask, positions_BxT):
        """carry: (x [B, T, E], this layer's (keys, values) cache buffers or None)."""
        x_BxTxE, cache_kv = carry
        h, cache_kv = Attention(self.cfg, self.sharder, name="attn")(
            RMSNorm(self.cfg, name="attn_norm")(x_BxTxE), cos, sin, mask, positions_BxT, cache_kv)
        x_BxTxE = x_BxTxE + h
        x_BxTxE = x_BxTxE + MLP(self.cfg, name="mlp")(RMSNorm(self.cfg, name="mlp_norm")(x_BxTxE))
        x_BxTxE = constrain(self.sharder, x_BxTxE, ("batch", "length", "embed"))
        return (x_BxTxE, cache_kv), None


_REMAT_POLICIES = {
    "full": None,
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_with_no_batch_dims": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


CPU_UNROLL_MAX_LAYERS = 8


def layer_unroll(cfg: ModelConfig, sharder: Sharder | None) -> int:
    """How many layers one iteration of the layer loop runs: all of them for small models on CPU.

    A scanned stack keeps each layer's residuals for the backward pass in [L, ...] buffers that
    are zero-filled and written slice by slice; on XLA:CPU those copies cost ~15% of a small
    model's SFT step. Unrolled, compile time grows with depth, so only up to
    CPU_UNROLL_MAX_LAYERS layers and only on CPU (accelerators keep the scan).
    """
    platform = sharder.mesh.devices.flat[0].platform if sharder is not None else jax.default_backend()
    return cfg.num_layers if platform == "cpu" and cfg.num_layers <= CPU_UNROLL_MAX_LAYERS else 1


class Decoder(nn.Module):
    """Token ids -> float32 logits (and the updated cache in cached mode)."""

    cfg: ModelConfig
    sharder: Sharder | None = None

    @nn.compact
    def __call__(self, tokens_BxT, positions_BxT, *, segment_ids_BxT=None, cache: KVCache | None = None,
                 return_hidden: bool = False):
        cfg = self.cfg
        dtype = _dtype(cfg.dtype)
        embedding_VxE = _param(self, "embedding", nn.initializers.normal(cfg.init_std), (cfg.vocab_size, cfg.hidden_size),
                               ("vocab", "embed"), cfg)
        x_BxTxE = jnp.take(embedding_VxE, tokens_BxT, axis=0).astype(dtype)
        x_BxTxE = constrain(self.sharder, x_BxTxE, ("batch", "length", "embed"))
        cos, sin = rope.rope_tables(positions_BxT, rope.inverse_frequencies(cfg))
        new_cache = None
        if cache is None:  # the layer scan (defines the stacked "layers" parameters)
            if segment_ids_BxT is None:
                segment_ids_BxT = jnp.ones(tokens_BxT.shape, jnp.int32)
            mask = attention.training_mask(segment_ids_BxT)
            layer_cls = DecoderLayer
            if cfg.remat != "none":
                layer_cls = nn.remat(DecoderLayer, policy=_REMAT_POLICIES[cfg.remat], prevent_cse=False)
            stack = nn.scan(layer_cls, variable_axes={"params": 0}, split_rngs={"params": True},
                            in_axes=(nn.broadcast, nn.broadcast, nn.broadcast, nn.broadcast), length=cfg.num_layers,
                            metadata_params={nn.PARTITION_NAME: "layers"}, unroll=layer_unroll(cfg, self.sharder))
            (x_BxTxE, _), _ = stack(cfg, self.sharder, name="layers")((x_BxTxE, None), cos, sin, mask, positions_BxT)
        elif self.is_initializing():
            raise ValueError("initialise the decoder without a cache")
        else:
            mask = attention.cache_mask(positions_BxT, cache.length)
            # a Python loop over the layers, each on its own cache buffers (module docstring)
            stacked = self.variables["params"]["layers"]
            keys, values = [], []
            for layer in range(cfg.num_layers):
                layer_params = jax.tree.map(lambda a, i=layer: a[i], stacked)
                (x_BxTxE, (k, v)), _ = DecoderLayer(cfg, self.sharder, parent=None).apply(
                    {"params": layer_params}, (x_BxTxE, (cache.k[layer], cache.v[layer])), cos, sin, mask,
                    positions_BxT)
                keys.append(k)
                values.append(v)
            new_cache = KVCache(tuple(keys), tuple(values))
        x_BxTxE = RMSNorm(cfg, name="final_norm")(x_BxTxE)
        if not cfg.tie_embeddings:
            w_ExV = _param(self, "lm_head", nn.initializers.normal(cfg.init_std), (cfg.hidden_size, cfg.vocab_size),
                           ("embed", "vocab"), cfg)
        if return_hidden:
            return x_BxTxE, new_cache
        return output_logits(cfg, x_BxTxE, embedding_VxE, None if cfg.tie_embeddings else w_ExV,
                             self.sharder), new_cache


def output_logits(cfg: ModelConfig, x_BxTxE, embedding_VxE, w_ExV=None, sharder: Sharder | None = None):
    """The output head on final-norm hidden states: float32 logits [B, T, V] (through the tied
    embedding, or `lm_head` [E, V] when the model has one)."""
    dtype = _dtype(cfg.dtype)
    if w_ExV is None:
        logits_BxTxV = linear_transposed(x_BxTxE, embedding_VxE.astype(dtype), out_dtype=jnp.float32)
    else:
        logits_BxTxV = linear(x_BxTxE, w_ExV.astype(dtype), out_dtype=jnp.float32)
    return constrain(sharder, logits_BxTxV, ("batch", "length", "vocab"))


def cache_shape(cfg: ModelConfig, batch: int, length: int) -> tuple[int, int, int, int]:
    """The shape of one layer's keys (or values) buffer: [B, K, S, D]."""
    return (batch, cfg.num_kv_heads, length, cfg.resolved_head_dim)


def init_cache(cfg: ModelConfig, batch: int, length: int, dtype: str | None = None) -> KVCache:
    """A zeroed cache, [B, K, S, D] per layer (create it under jit with out_shardings for sharded use)."""
    dt = _dtype(dtype or cfg.dtype)
    def zeros():
        return tuple(jnp.zeros(cache_shape(cfg, batch, length), dt) for _ in range(cfg.num_layers))

    return KVCache(zeros(), zeros())
