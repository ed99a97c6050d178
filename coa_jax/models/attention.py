"""Grouped-query attention over explicit boolean masks; softmax in float32."""

from __future__ import annotations

import jax
import jax.numpy as jnp

_NEG = -1e30  # finite so fully masked (padding) rows give a uniform softmax, not NaN


def training_mask(segment_ids_BxT: jnp.ndarray) -> jnp.ndarray:
    """[B, T, T] causal mask within packed segments; segment id 0 marks padding."""
    t = segment_ids_BxT.shape[1]
    causal_TxT = jnp.arange(t)[None, :] <= jnp.arange(t)[:, None]
    same_BxTxT = segment_ids_BxT[:, :, None] == segment_ids_BxT[:, None, :]
    real_Bx1xT = (segment_ids_BxT != 0)[:, None, :]
    return causal_TxT[None] & same_BxTxT & real_Bx1xT


def cache_mask(positions_BxT: jnp.ndarray, cache_len: int) -> jnp.ndarray:
    """[B, T, S] mask for queries against a KV cache whose slot index equals the token position."""
    return jnp.arange(cache_len)[None, None, :] <= positions_BxT[:, :, None]


def attend(q_BxTxHxD, k_BxSxKxD, v_BxSxKxD, mask_BxTxS, impl: str = "xla") -> jnp.ndarray:
    """Scaled dot-product attention with H query heads sharing K kv heads. Returns [B, T, H, D]."""
    if impl == "cudnn":
        return jax.nn.dot_product_attention(q_BxTxHxD, k_BxSxKxD, v_BxSxKxD, mask=mask_BxTxS[:, None],
                                            implementation="cudnn")
    b, t, h, d = q_BxTxHxD.shape
    k = k_BxSxKxD.shape[2]
    q_BxTxKxGxD = q_BxTxHxD.reshape(b, t, k, h // k, d)
    logits_BxKxGxTxS = jnp.einsum("btkgd,bskd->bkgts", q_BxTxKxGxD, k_BxSxKxD,
                                  preferred_element_type=jnp.float32) * (d ** -0.5)
    logits_BxKxGxTxS = jnp.where(mask_BxTxS[:, None, None], logits_BxKxGxTxS, _NEG)
    probs = jax.nn.softmax(logits_BxKxGxTxS, axis=-1).astype(v_BxSxKxD.dtype)
    out_BxTxKxGxD = jnp.einsum("bkgts,bskd->btkgd", probs, v_BxSxKxD)
    return out_BxTxKxGxD.reshape(b, t, h, d)
