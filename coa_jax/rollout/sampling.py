"""Pick the next token from logits: greedy, temperature, top-k, top-p. Returns its log-prob.

Random streams are per row: the key of row b at position t is
`fold_in(fold_in(base, seed_B[b]), t)`, so a row's samples depend only on its own seed, its
position and its logits; never on which slot it sits in, the other rows of the batch, how the
decode was split into calls, or the mesh.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

_NEG = -1e30


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """Static sampling settings (part of the compiled program). temperature 0 means greedy."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def scaled_logprobs(logits_BxV: jax.Array, params: SamplingParams) -> jax.Array:
    """log-softmax of logits / temperature (temperature 1 when greedy): the policy's log-probs.

    The trainer recomputes log-probs with the same scaling, so sampler and trainer agree.
    """
    t = 1.0 if params.greedy else params.temperature
    return jax.nn.log_softmax(logits_BxV.astype(jnp.float32) / t, axis=-1)


def row_keys(base: jax.Array, seeds_B: jax.Array, positions_B: jax.Array) -> jax.Array:
    """One key per row: `fold_in(fold_in(base, seed), position)`."""
    def one(seed, pos):
        return jax.random.fold_in(jax.random.fold_in(base, seed), pos)

    return jax.vmap(one)(seeds_B, positions_B)


def _filtered(logprobs_BxV: jax.Array, params: SamplingParams) -> jax.Array:
    filtered = logprobs_BxV
    if params.top_k:
        kth_B = jax.lax.top_k(filtered, params.top_k)[0][:, -1:]
        filtered = jnp.where(filtered < kth_B, _NEG, filtered)
    if params.top_p < 1.0:
        sorted_BxV = jnp.sort(filtered, axis=-1)[:, ::-1]
        cum_BxV = jnp.cumsum(jax.nn.softmax(sorted_BxV, axis=-1), axis=-1)
        # keep the smallest prefix whose mass reaches top_p (always at least the top token)
        cutoff_idx_B = jnp.sum(cum_BxV < params.top_p, axis=-1, keepdims=True)
        cutoff_B = jnp.take_along_axis(sorted_BxV, jnp.minimum(cutoff_idx_B, sorted_BxV.shape[-1] - 1), axis=-1)
        filtered = jnp.where(filtered < cutoff_B, _NEG, filtered)
    return filtered


def sample_tokens(logits_BxV: jax.Array, rng: jax.Array, params: SamplingParams) -> tuple[jax.Array, jax.Array]:
    """(tokens [B] int32, log-probs [B] of those tokens under `scaled_logprobs`).

    Args:
      logits_BxV: next-token logits.
      rng: one key for the whole batch, or one key per row (shape [B], see `row_keys`).
      params: the sampling settings.
    """
    logprobs_BxV = scaled_logprobs(logits_BxV, params)
    if params.greedy:
        tokens_B = jnp.argmax(logits_BxV, axis=-1).astype(jnp.int32)
    else:
        filtered = _filtered(logprobs_BxV, params)
        if rng.ndim == 0:
            tokens_B = jax.random.categorical(rng, filtered, axis=-1)
        else:
            tokens_B = jax.vmap(lambda key, row: jax.random.categorical(key, row))(rng, filtered)
        tokens_B = tokens_B.astype(jnp.int32)
    chosen_B = jnp.take_along_axis(logprobs_BxV, tokens_B[:, None], axis=-1)[:, 0]
    return tokens_B, chosen_B
