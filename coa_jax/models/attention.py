"""Grouped-query attention with masks built from segment ids and positions; softmax in float32.

Which key slots a query sees is described by a `KeyMask`, never by a materialised [B, T, S] array:
slot s is visible to query t when `s <= query_pos[t]`, `key_seg[s] == query_seg[t]` and
`key_seg[s] != 0` (segment 0 is padding). Packed training rows use the token index as
`query_pos` and their segment ids on both sides; cached calls use the token positions and
segment 1 everywhere. Each block of queries builds its slice of the mask on the fly.

`attend` is blockwise attention with its own backward pass (the FlashAttention recurrence,
written with XLA ops): queries are split into blocks; under a causal mask a block reads only
the keys up to its own end (about half the work of full attention for long rows); the backward
pass recomputes each block's probabilities from the saved row max and sum instead of keeping the
[B, H, T, S] probabilities of every layer alive between the passes. On CPU, where those tensors
do not fit in cache and every extra pass over them is paid in memory traffic, this is most of
a training step's attention cost.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

_NEG = -1e30  # finite so fully masked (padding) rows give a uniform softmax, not NaN
QUERY_BLOCK = 128  # queries per block in causal (training) calls


class KeyMask(NamedTuple):
    """Visibility of key slots: s <= query_pos_BxT, same segment, key segment != 0."""

    query_pos_BxT: jax.Array
    query_seg_BxT: jax.Array
    key_seg_BxS: jax.Array


def training_mask(segment_ids_BxT: jax.Array) -> KeyMask:
    """Causal within packed segments; segment id 0 marks padding."""
    index_BxT = jnp.broadcast_to(jnp.arange(segment_ids_BxT.shape[1], dtype=jnp.int32), segment_ids_BxT.shape)
    return KeyMask(index_BxT, segment_ids_BxT, segment_ids_BxT)


def cache_mask(positions_BxT: jax.Array, cache_len: int) -> KeyMask:
    """Queries against a KV cache whose slot index equals the token position."""
    b = positions_BxT.shape[0]
    return KeyMask(positions_BxT, jnp.ones_like(positions_BxT), jnp.ones((b, cache_len), positions_BxT.dtype))


def dense_mask(mask: KeyMask, start: int = 0, stop: int | None = None, keys: int | None = None) -> jax.Array:
    """[B, T', S'] booleans for queries [start, stop) against key slots [0, keys)."""
    pos_BxT = mask.query_pos_BxT[:, start:stop]
    qseg_BxT = mask.query_seg_BxT[:, start:stop]
    kseg_BxS = mask.key_seg_BxS[:, :keys]
    slots_S = jnp.arange(kseg_BxS.shape[1], dtype=pos_BxT.dtype)
    return ((slots_S[None, None, :] <= pos_BxT[:, :, None]) & (kseg_BxS[:, None, :] == qseg_BxT[:, :, None])
            & (kseg_BxS[:, None, :] != 0))


def _blocks(t: int, s: int, causal: bool) -> tuple[tuple[int, int, int], ...]:
    """(query start, query stop, keys read) per block; causal blocks read keys up to their end."""
    if not causal or t <= QUERY_BLOCK or t % QUERY_BLOCK or s != t:
        return ((0, t, s),)
    return tuple((i, i + QUERY_BLOCK, i + QUERY_BLOCK) for i in range(0, t, QUERY_BLOCK))


def _dot(a, b, contract: tuple[int, int], dtype=None):
    """Batched over the leading (batch, kv head) dims: [B, K, M, X] x [B, K, N, Y]."""
    return jax.lax.dot_general(a, b, (((contract[0],), (contract[1],)), ((0, 1), (0, 1))),
                               preferred_element_type=dtype)


def _block_logits(q_BxKxRxD, k_BxKxSxD, mask: KeyMask, start: int, stop: int, keys: int, g: int):
    """Scaled, masked float32 logits [B, K, G*Tq, S'] of one query block (rows ordered g-major) and
    the visibility mask they were masked with, [B, 1, 1, Tq, S']."""
    b, kh, rows, d = q_BxKxRxD.shape
    logits = _dot(q_BxKxRxD, k_BxKxSxD[:, :, :keys], (3, 3), jnp.float32) * (d ** -0.5)
    visible_Bx1x1xTxS = dense_mask(mask, start, stop, keys)[:, None, None]
    logits = jnp.where(visible_Bx1x1xTxS, logits.reshape(b, kh, g, stop - start, keys), _NEG)
    return logits.reshape(b, kh, rows, keys), visible_Bx1x1xTxS


def _split_rows(q_BxTxHxD, kh: int):
    """[B, T, H, D] -> [B, K, G, T, D]: the G query heads that share a kv head side by side."""
    b, t, h, d = q_BxTxHxD.shape
    return q_BxTxHxD.reshape(b, t, kh, h // kh, d).transpose(0, 2, 3, 1, 4)


def _block_rows(q_BxKxGxTxD, start: int, stop: int):
    b, kh, g, _, d = q_BxKxGxTxD.shape
    return q_BxKxGxTxD[:, :, :, start:stop].reshape(b, kh, g * (stop - start), d)


def _forward(q_BxTxHxD, k_BxSxKxD, v_BxSxKxD, mask: KeyMask, causal: bool):
    return _forward_heads_major(q_BxTxHxD, k_BxSxKxD.transpose(0, 2, 1, 3), v_BxSxKxD.transpose(0, 2, 1, 3), mask,
                                causal)


def _forward_heads_major(q_BxTxHxD, k_BxKxSxD, v_BxKxSxD, mask: KeyMask, causal: bool):
    """(out [B, T, H, D], row stats) with keys and values as [B, K, S, D]: every product is a
    matmul batched over the leading (batch, kv head) dims, with no transpose of the keys."""
    b, t, h, d = q_BxTxHxD.shape
    kh, s = k_BxKxSxD.shape[1], k_BxKxSxD.shape[2]
    g = h // kh
    q_BxKxGxTxD = _split_rows(q_BxTxHxD, kh)
    outs, stats = [], []
    for start, stop, keys in _blocks(t, s, causal):
        logits, _ = _block_logits(_block_rows(q_BxKxGxTxD, start, stop), k_BxKxSxD, mask, start, stop, keys, g)
        max_BxKxR = jnp.max(logits, axis=-1)
        unnorm = jnp.exp(logits - max_BxKxR[..., None])
        sum_BxKxR = jnp.sum(unnorm, axis=-1)
        # normalise the [rows, D] output rather than the [rows, S] probabilities: one pass fewer
        out_BxKxRxD = _dot(unnorm.astype(v_BxKxSxD.dtype), v_BxKxSxD[:, :, :keys], (3, 2), jnp.float32)
        out_BxKxRxD = (out_BxKxRxD / sum_BxKxR[..., None]).astype(v_BxKxSxD.dtype)
        outs.append(out_BxKxRxD.reshape(b, kh, g, stop - start, d))
        stats.append(jnp.stack([max_BxKxR, 1.0 / sum_BxKxR]).reshape(2, b, kh, g, stop - start))
    out_BxKxGxTxD = jnp.concatenate(outs, axis=3) if len(outs) > 1 else outs[0]
    stats_2xBxKxGxT = jnp.concatenate(stats, axis=4) if len(stats) > 1 else stats[0]
    return out_BxKxGxTxD.transpose(0, 3, 1, 2, 4).reshape(b, t, h, d), stats_2xBxKxGxT


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _attend(q_BxTxHxD, k_BxSxKxD, v_BxSxKxD, mask: KeyMask, causal: bool):
    return _forward(q_BxTxHxD, k_BxSxKxD, v_BxSxKxD, mask, causal)[0]


def _attend_fwd(q_BxTxHxD, k_BxSxKxD, v_BxSxKxD, mask: KeyMask, causal: bool):
    out, stats = _forward(q_BxTxHxD, k_BxSxKxD, v_BxSxKxD, mask, causal)
    return out, (q_BxTxHxD, k_BxSxKxD, v_BxSxKxD, mask, out, stats)


def _attend_bwd(causal: bool, res, dout_BxTxHxD):
    q_BxTxHxD, k_BxSxKxD, v_BxSxKxD, mask, out_BxTxHxD, stats_2xBxKxGxT = res
    b, t, h, d = q_BxTxHxD.shape
    s, kh = k_BxSxKxD.shape[1], k_BxSxKxD.shape[2]
    g = h // kh
    scale = d ** -0.5
    q_BxKxGxTxD = _split_rows(q_BxTxHxD, kh)
    do_BxKxGxTxD = _split_rows(dout_BxTxHxD, kh)
    # delta = rowsum(dO * O), the softmax backward's correction term, once for all blocks
    delta_BxKxGxT = jnp.sum(do_BxKxGxTxD.astype(jnp.float32) * _split_rows(out_BxTxHxD, kh).astype(jnp.float32), -1)
    k_BxKxSxD, v_BxKxSxD = k_BxSxKxD.transpose(0, 2, 1, 3), v_BxSxKxD.transpose(0, 2, 1, 3)
    dk_BxKxSxD = jnp.zeros(k_BxKxSxD.shape, jnp.float32)
    dv_BxKxSxD = jnp.zeros(v_BxKxSxD.shape, jnp.float32)
    dqs = []
    for start, stop, keys in _blocks(t, s, causal):
        q_rows = _block_rows(q_BxKxGxTxD, start, stop)
        do_rows = _block_rows(do_BxKxGxTxD, start, stop)
        rows = q_rows.shape[2]
        logits, visible = _block_logits(q_rows, k_BxKxSxD, mask, start, stop, keys, g)
        max_, inv_sum = stats_2xBxKxGxT[:, :, :, :, start:stop].reshape(2, b, kh, rows)
        delta = delta_BxKxGxT[:, :, :, start:stop].reshape(b, kh, rows)
        # the forward's probabilities exactly (a log-sum-exp would lose the sum of fully masked
        # padding rows next to the -1e30 mask value)
        probs = jnp.exp(logits - max_[..., None]) * inv_sum[..., None]
        dv_BxKxSxD = dv_BxKxSxD.at[:, :, :keys].add(_dot(probs.astype(do_rows.dtype), do_rows, (2, 2), jnp.float32))
        dprobs = _dot(do_rows, v_BxKxSxD[:, :, :keys], (3, 3), jnp.float32)
        dlogits = probs * (dprobs - delta[..., None]) * scale
        # masked logits are constants (the -1e30 fill): no gradient, also in fully masked rows
        dlogits = jnp.where(visible, dlogits.reshape(visible.shape[:1] + (kh, g) + visible.shape[3:]), 0.0)
        dlogits = dlogits.reshape(b, kh, rows, keys).astype(q_rows.dtype)
        dqs.append(_dot(dlogits, k_BxKxSxD[:, :, :keys], (3, 2), jnp.float32).reshape(b, kh, g, stop - start, d))
        dk_BxKxSxD = dk_BxKxSxD.at[:, :, :keys].add(_dot(dlogits, q_rows, (2, 2), jnp.float32))
    dq_BxKxGxTxD = jnp.concatenate(dqs, axis=3) if len(dqs) > 1 else dqs[0]
    dq = dq_BxKxGxTxD.transpose(0, 3, 1, 2, 4).reshape(b, t, h, d).astype(q_BxTxHxD.dtype)
    dk = dk_BxKxSxD.transpose(0, 2, 1, 3).astype(k_BxSxKxD.dtype)
    dv = dv_BxKxSxD.transpose(0, 2, 1, 3).astype(v_BxSxKxD.dtype)
    return dq, dk, dv, jax.tree.map(lambda _: None, mask)


_attend.defvjp(_attend_fwd, _attend_bwd)


def attend(q_BxTxHxD, k_BxSxKxD, v_BxSxKxD, mask: KeyMask, impl: str = "xla", *, causal: bool = False):
    """Scaled dot-product attention with H query heads sharing K kv heads. Returns [B, T, H, D].

    Args:
      mask: which key slots each query sees.
      impl: "xla" (blockwise, any backend) or "cudnn" (GPU fused kernel).
      causal: the mask is causal in slot order with query t at slot t (packed training rows),
        so query blocks skip the key blocks after their own.
    """
    if impl == "cudnn":
        return jax.nn.dot_product_attention(q_BxTxHxD, k_BxSxKxD, v_BxSxKxD, mask=dense_mask(mask)[:, None],
                                            implementation="cudnn")
    return _attend(q_BxTxHxD, k_BxSxKxD, v_BxSxKxD, mask, causal)


def cached_attend(q_BxTxHxD, k_BxKxSxD, v_BxKxSxD, mask: KeyMask, impl: str = "xla"):
    """Attention of a cached call (prefill, append, one-token decode; no gradient) over one layer's
    cache in its [B, K, S, D] layout. Returns [B, T, H, D].

    A decode step is bound by reading the cache: kept heads-major, both products are plain
    batched matmuls that read it in place ([B, S, K, D] would first be transposed: a copy of the
    whole cache every step).
    """
    if impl == "cudnn" and q_BxTxHxD.shape[1] > 1:  # a chunk: the fused kernel, on the transposed cache
        return attend(q_BxTxHxD, k_BxKxSxD.transpose(0, 2, 1, 3), v_BxKxSxD.transpose(0, 2, 1, 3), mask, impl)
    return _forward_heads_major(q_BxTxHxD, k_BxKxSxD, v_BxKxSxD, mask, causal=False)[0]
