"""Projections (x times a weight) with a hand-written backward pass.

Autodiff of `x @ w` asks for the weight gradient as `x^T @ dy`. XLA:CPU lays that dot out by
transposing the *activation* operand, and fuses the transpose into whatever elementwise op
produced it (the SwiGLU backward, the softmax backward of the logits): a strided write of a
[tokens, width] tensor that cost more than all the layer's matmuls together in a profile of the
SFT step. Here the weight gradient is a dot that contracts the token dimension of both operands
in place, which every backend runs without a copy. The math is the same as autodiff's.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp


def _contract(a, b, dims: tuple[int, int], out_dtype):
    return jax.lax.dot_general(a, b, (((dims[0],), (dims[1],)), ((), ())), preferred_element_type=out_dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _matmul(x_NxI, w_IxO, out_dtype):
    return _contract(x_NxI, w_IxO, (1, 0), out_dtype)


def _matmul_fwd(x_NxI, w_IxO, out_dtype):
    return _matmul(x_NxI, w_IxO, out_dtype), (x_NxI, w_IxO)


def _matmul_bwd(out_dtype, res, dy_NxO):
    x_NxI, w_IxO = res
    dy = dy_NxO.astype(x_NxI.dtype)
    dx_NxI = _contract(dy, w_IxO, (1, 1), jnp.float32).astype(x_NxI.dtype)
    dw_IxO = _contract(x_NxI, dy, (0, 0), jnp.float32).astype(w_IxO.dtype)
    return dx_NxI, dw_IxO


_matmul.defvjp(_matmul_fwd, _matmul_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _matmul_t(x_NxI, w_OxI, out_dtype):
    return _contract(x_NxI, w_OxI, (1, 1), out_dtype)


def _matmul_t_fwd(x_NxI, w_OxI, out_dtype):
    return _matmul_t(x_NxI, w_OxI, out_dtype), (x_NxI, w_OxI)


def _matmul_t_bwd(out_dtype, res, dy_NxO):
    x_NxI, w_OxI = res
    dy = dy_NxO.astype(x_NxI.dtype)
    dx_NxI = _contract(dy, w_OxI, (1, 0), jnp.float32).astype(x_NxI.dtype)
    dw_OxI = _contract(dy, x_NxI, (0, 0), jnp.float32).astype(w_OxI.dtype)
    return dx_NxI, dw_OxI


_matmul_t.defvjp(_matmul_t_fwd, _matmul_t_bwd)


def linear(x, w, *, in_dims: int = 1, out_dtype=None):
    """Contract the last `in_dims` dims of x with the first `in_dims` dims of w.

    E.g. x [B, T, E] and w [E, H, D] -> [B, T, H, D]; x [B, T, H, D] and w [H, D, E] with
    in_dims=2 -> [B, T, E]. Result in `out_dtype` (default x's dtype).
    """
    lead, inner = x.shape[:x.ndim - in_dims], math.prod(x.shape[x.ndim - in_dims:])
    out_shape = w.shape[in_dims:]
    y = _matmul(x.reshape(-1, inner), w.reshape(inner, -1), jnp.dtype(out_dtype or x.dtype))
    return y.reshape(lead + out_shape)


def linear_transposed(x, w_OxI, *, out_dtype=None):
    """x [..., I] times the transpose of w [O, I] -> [..., O] (tied embeddings as the output head)."""
    y = _matmul_t(x.reshape(-1, x.shape[-1]), w_OxI, jnp.dtype(out_dtype or x.dtype))
    return y.reshape(x.shape[:-1] + (w_OxI.shape[0],))
