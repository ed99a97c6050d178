"""Blockwise attention with its own backward pass, and cached calls over the heads-major cache, against dense attention.

The reference is the textbook computation: a [B, T, S] boolean mask, -1e30 fill, softmax, and
autodiff for the gradients. Rows include padding (segment 0, every key masked), several packed
segments, a length that is not a multiple of the query block and GQA (H = 2 K).
"""

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from coa_jax.models import attention


def dense_reference(q, k, v, mask_BxTxS):
    b, t, h, d = q.shape
    kh = k.shape[2]
    qg = q.reshape(b, t, kh, h // kh, d)
    logits = jnp.einsum("btkgd,bskd->bkgts", qg, k) * d ** -0.5
    logits = jnp.where(mask_BxTxS[:, None, None], logits, -1e30)
    out = jnp.einsum("bkgts,bskd->btkgd", jax.nn.softmax(logits, -1), v)
    return out.reshape(b, t, h, d)


def _inputs(t, seed=0):
    ks = jax.random.split(jax.random.key(seed), 4)
    b, h, kh, d = 3, 4, 2, 16
    q, k, v = (jax.random.normal(ks[i], (b, t, n, d)) for i, n in enumerate((h, kh, kh)))
    seg = np.repeat(np.arange(1, 20), 50)[:t][None].repeat(b, 0)
    seg[0, -37:] = 0  # a padded tail
    seg[1] = 1  # one segment the whole row
    w = jax.random.normal(ks[3], (b, t, h, d))
    return q, k, v, jnp.asarray(seg, jnp.int32), w


@pytest.mark.parametrize("t", [384, 200])  # blocked (3 blocks of 128) and one block
def test_blockwise_attention_matches_dense_values_and_gradients(t):
    q, k, v, seg, w = _inputs(t)
    mask = attention.training_mask(seg)
    dense_mask = attention.dense_mask(mask)
    ours = lambda q, k, v: (attention.attend(q, k, v, mask, causal=True) * w).sum()  # noqa: E731
    ref = lambda q, k, v: (dense_reference(q, k, v, dense_mask) * w).sum()  # noqa: E731
    np.testing.assert_allclose(attention.attend(q, k, v, mask, causal=True), dense_reference(q, k, v, dense_mask),
                               atol=2e-5)
    for a, b in zip(jax.grad(ours, (0, 1, 2))(q, k, v), jax.grad(ref, (0, 1, 2))(q, k, v)):
        np.testing.assert_allclose(a, b, atol=2e-4)


@pytest.mark.parametrize("t", [1, 5])  # one-token decode, and an appended chunk
def test_cached_attend_equals_dense_attention_over_the_cache(t):
    q, k, v, _, _ = _inputs(64, seed=1)
    positions_BxT = jnp.asarray([[0], [40], [58]], jnp.int32) + jnp.arange(t)  # first slot, middle, last
    mask = attention.cache_mask(positions_BxT, 64)
    qt = q[:, :t]
    expected = dense_reference(qt, k, v, attention.dense_mask(mask))
    heads_major = lambda a: a.transpose(0, 2, 1, 3)  # noqa: E731  (the cache's [B, K, S, D] layout)
    got = attention.cached_attend(qt, heads_major(k), heads_major(v), mask)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # slots after the position do not matter
    k_later = k.at[:, 41 + t:].set(100.0)
    np.testing.assert_allclose(attention.cached_attend(qt[1:2], heads_major(k_later[1:2]), heads_major(v[1:2]),
                                                       attention.cache_mask(positions_BxT[1:2], 64)),
                               expected[1:2], atol=1e-5)
