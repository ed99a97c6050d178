"""Per-token log-probabilities of a sequence under the model (teacher forcing), float32.

Alignment convention used by every loss: position t holds log p(tokens[t] | tokens[<t]); position
0 (and the first token of every packed segment) has no prediction and must be masked out.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from coa_jax.models.model_config import ModelConfig
from coa_jax.models.params import Params, forward
from coa_jax.sharding.rules import Sharder


def token_logprobs(cfg: ModelConfig, params: Params, tokens_BxT, positions_BxT, segment_ids_BxT,
                   sharder: Sharder | None = None, temperature: float = 1.0, with_entropy: bool = False):
    """(logp_BxT, entropy_BxT or None): log-prob of each token given its prefix, at `temperature`."""
    logits_BxTxV, _ = forward(cfg, params, tokens_BxT, positions_BxT, segment_ids_BxT=segment_ids_BxT,
                              sharder=sharder)
    if not (isinstance(temperature, (int, float)) and temperature == 1.0):  # skip a [B, T, V] pass
        logits_BxTxV = logits_BxTxV / temperature
    # Score every position against the *next* token and shift the [B, T] results, rather than
    # slicing the [B, T, V] logits: the slice's backward is a pad of the whole logits gradient
    # that XLA:CPU fuses into a transposed copy (the costliest op of the SFT step in a profile).
    next_BxT = jnp.pad(tokens_BxT[:, 1:], ((0, 0), (0, 1)))
    logz_BxT = jax.nn.logsumexp(logits_BxTxV, axis=-1)
    picked_BxT = jnp.take_along_axis(logits_BxTxV, next_BxT[:, :, None], axis=-1)[..., 0]
    logp_BxT = _shift_right(picked_BxT - logz_BxT)
    entropy_BxT = None
    if with_entropy:
        probs = jax.nn.softmax(logits_BxTxV, axis=-1)
        entropy_BxT = _shift_right(logz_BxT - jnp.sum(probs * logits_BxTxV, axis=-1))
    return logp_BxT, entropy_BxT


def _shift_right(x_BxT):
    """Position t takes the value computed at t - 1; position 0 gets 0 (it has no prediction)."""
    return jnp.pad(x_BxT[:, :-1], ((0, 0), (1, 0)))


def microbatched_logprobs(cfg: ModelConfig, sharder: Sharder, temperature: float, micro: int, rows: int, length: int,
                          param_shardings: Params):
    """A jitted `(params, tokens, positions, segments) -> log-probs` over [micro, rows/micro, length]
    arrays, one microbatch at a time (`lax.map`), so its temporaries (the [rows, length, vocab]
    logits above all) are those of one microbatch: the old- and reference-log-prob pass of a
    GRPO step fits where the train step's microbatches fit."""
    per = rows // micro
    sh = sharder.sharding((None, "batch", "length"), (micro, per, length))

    def fn(params, tokens, positions, segments):
        def one(x):
            return token_logprobs(cfg, params, *x, sharder, temperature)[0]

        return jax.lax.map(one, (tokens, positions, segments))

    return jax.jit(fn, in_shardings=(param_shardings, sh, sh, sh), out_shardings=sh)
