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
    Prefill, one-token decode and appending observations to chosen rows are all this mode. The
    whole [L, ...] cache is the layer loop's carry: layer l writes its slots in place, then reads
    its slice, so a step never copies the cache (as scan inputs and outputs it would be rebuilt
    every step: the cost that bounds decoding).
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
    """Per-layer keys and values: [L, B, S, K, D] each."""

    k: jax.Array
    v: jax.Array

    @property
    def length(self) -> int:
        return self.k.shape[2]


CACHE_AXES = ("layers", "batch", "cache_length", "kv_heads", "head_dim")


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
    def __call__(self, x_BxTxE, cos, sin, mask: attention.KeyMask, positions_BxT, cache_kv, layer):
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
            keys_BxSxKxD, values_BxSxKxD, new_cache = k_BxTxKxD, v_BxTxKxD, None
        else:
            # write this chunk's k/v into layer `layer`'s slots of the carried [L, B, S, K, D] cache
            # (in place), then read the layer's slice: queries see their own slot too
            ck, cv = cache_kv
            rows_BxT = jnp.broadcast_to(jnp.arange(x.shape[0])[:, None], positions_BxT.shape)
            ck = ck.at[layer, rows_BxT, positions_BxT].set(k_BxTxKxD.astype(ck.dtype), mode="drop")
            cv = cv.at[layer, rows_BxT, positions_BxT].set(v_BxTxKxD.astype(cv.dtype), mode="drop")
            new_cache = (ck, cv)
            keys_BxSxKxD = jax.lax.dynamic_index_in_dim(ck, layer, 0, keepdims=False).astype(dtype)
            values_BxSxKxD = jax.lax.dynamic_index_in_dim(cv, layer, 0, keepdims=False).astype(dtype)
            if x.shape[1] == 1:  # one token per row: read the cache in its own layout
                out_BxTxHxD = attention.decode_attend(q_BxTxHxD, keys_BxSxKxD, values_BxSxKxD, positions_BxT)
                return linear(out_BxTxHxD, wo.astype(dtype), in_dims=2), new_cache
        out_BxTxHxD = attention.attend(q_BxTxHxD, keys_BxSxKxD, values_BxSxKxD, mask, cfg.attention,
                                       causal=cache_kv is None)
        out_BxTxE = linear(out_BxTxHxD, wo.astype(dtype), in_dims=2)
        return out_BxTxE, new_cache


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
    def __call__(self, carry, layer, cos, sin, mask: attention.KeyMask, positions_BxT):
        x_BxTxE, cache_kv = carry
        h, cache_kv = Attention(self.cfg, self.sharder, name="attn")(
            RMSNorm(self.cfg, name="attn_norm")(x_BxTxE), cos, sin, mask, positions_BxT, cache_kv, layer)
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
        if cache is None:
            if segment_ids_BxT is None:
                segment_ids_BxT = jnp.ones(tokens_BxT.shape, jnp.int32)
            mask = attention.training_mask(segment_ids_BxT)
            layer_cache = None
        else:
            mask = attention.cache_mask(positions_BxT, cache.length)
            layer_cache = (cache.k, cache.v)

        layer_cls = DecoderLayer
        if cfg.remat != "none":
            layer_cls = nn.remat(DecoderLayer, policy=_REMAT_POLICIES[cfg.remat], prevent_cse=False)
        # cached calls keep a real loop: unrolled, XLA copies the carried cache between layers
        unroll = layer_unroll(cfg, self.sharder) if cache is None else 1
        stack = nn.scan(layer_cls, variable_axes={"params": 0}, split_rngs={"params": True},
                        in_axes=(0, nn.broadcast, nn.broadcast, nn.broadcast, nn.broadcast),
                        length=cfg.num_layers, metadata_params={nn.PARTITION_NAME: "layers"}, unroll=unroll)
        (x_BxTxE, new_layer_cache), _ = stack(cfg, self.sharder, name="layers")(
            (x_BxTxE, layer_cache), jnp.arange(cfg.num_layers), cos, sin, mask, positions_BxT)
        x_BxTxE = RMSNorm(cfg, name="final_norm")(x_BxTxE)
        new_cache = None if cache is None else KVCache(*new_layer_cache)
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


def init_cache(cfg: ModelConfig, batch: int, length: int, dtype: str | None = None) -> KVCache:
    """A zeroed cache [L, B, S, K, D] (create it under jit with out_shardings for sharded use)."""
    shape = (cfg.num_layers, batch, length, cfg.num_kv_heads, cfg.resolved_head_dim)
    dt = _dtype(dtype or cfg.dtype)
    return KVCache(jnp.zeros(shape, dt), jnp.zeros(shape, dt))
