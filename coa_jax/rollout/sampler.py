"""Device side of generation: append tokens to a KV cache, decode until stop. Jitted once.

The state of a batch of rows lives on device between calls:
  cache    KVCache [L, B, S, K, D]   slot index == token position
  lengths  [B]    tokens in the cache per row (the next token's position)
  logits   [B, V] next-token logits of each row (after its last cached token)

`append` writes a chunk of given tokens (a prompt, a tool observation, a forced answer trigger)
to chosen rows; `decode` samples until every live row hits a stop sequence, its token budget or
the cache end. Stop sequences are multi-token and are matched inside the loop. Rows that are not
live feed their token at position S, which the cache scatter drops, so their cache is untouched.
Shapes are static per (batch, cache length, chunk bucket, decode steps): no per-step recompiles.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from coa_jax.models.decoder import KVCache
from coa_jax.models.model_config import ModelConfig
from coa_jax.models.params import Params, cache_shardings, forward, param_shardings
from coa_jax.rollout.sampling import SamplingParams, sample_tokens
from coa_jax.sharding.rules import Sharder

NO_STOP = -1  # stop reason: ran out of budget/steps (no stop sequence matched)


class SamplerState(NamedTuple):
    cache: KVCache
    lengths_B: jax.Array
    logits_BxV: jax.Array


class DecodeResult(NamedTuple):
    tokens_BxN: jax.Array  # sampled tokens, row b valid for the first num_B[b]
    logprobs_BxN: jax.Array  # their log-probs under the sampling distribution
    num_B: jax.Array  # tokens generated per row in this call
    stop_B: jax.Array  # index of the matched stop sequence, or NO_STOP


def stop_table(stop_sequences: Sequence[Sequence[int]]) -> np.ndarray:
    """Right-aligned [num_stops, max_len] table, -1 = wildcard (shorter sequences)."""
    if not stop_sequences:
        return np.full((1, 1), -3, np.int32)  # matches nothing (token ids are >= 0; history starts at -2)
    width = max(len(s) for s in stop_sequences)
    table = np.full((len(stop_sequences), width), -1, np.int32)
    for i, seq in enumerate(stop_sequences):
        if not seq:
            raise ValueError(f"stop sequence {i} is empty")
        table[i, width - len(seq):] = seq
    return table


@dataclasses.dataclass(frozen=True)
class SamplerShape:
    batch: int
    cache_len: int
    decode_steps: int  # tokens one decode call may generate per row


class Sampler:
    """Jitted append/decode for one model config, batch shape and sampling setting."""

    def __init__(self, cfg: ModelConfig, sharder: Sharder, shape: SamplerShape, sampling: SamplingParams,
                 stop_sequences: Sequence[Sequence[int]] = ()):
        self.cfg, self.sharder, self.shape, self.sampling = cfg, sharder, shape, sampling
        self.stops_NxM = stop_table(stop_sequences)
        b = shape.batch
        self.param_shardings = param_shardings(cfg, sharder)
        row = sharder.sharding(("batch",), (b,))
        self.state_shardings = SamplerState(cache_shardings(cfg, sharder, b, shape.cache_len), row,
                                            sharder.sharding(("batch", "vocab"), (b, cfg.vocab_size)))
        self._row = row
        self._rows2 = lambda n: sharder.sharding(("batch", "length"), (b, n))
        self._append_fns: dict[int, callable] = {}
        out = DecodeResult(self._rows2(shape.decode_steps), self._rows2(shape.decode_steps), row, row)
        self._decode = jax.jit(self._decode_impl,
                               in_shardings=(self.param_shardings, self.state_shardings, row, row,
                                             sharder.replicated()),
                               out_shardings=(self.state_shardings, out), donate_argnums=(1,))

    def init_state(self) -> SamplerState:
        """An empty cache (created in its shardings)."""
        cfg, s = self.cfg, self.shape
        shape = (cfg.num_layers, s.batch, s.cache_len, cfg.num_kv_heads, cfg.resolved_head_dim)

        @functools.partial(jax.jit, out_shardings=self.state_shardings)
        def _zeros():
            z = jnp.zeros(shape, jnp.dtype(cfg.dtype))
            return SamplerState(KVCache(z, z), jnp.zeros((s.batch,), jnp.int32),
                                jnp.zeros((s.batch, cfg.vocab_size), jnp.float32))

        return _zeros()

    def append(self, params: Params, state: SamplerState, tokens_BxC: np.ndarray, n_valid_B: np.ndarray) -> SamplerState:
        """Write the first n_valid_B[b] tokens of row b into the cache (0 leaves the row untouched)."""
        c = tokens_BxC.shape[1]
        if c not in self._append_fns:
            self._append_fns[c] = jax.jit(
                self._append_impl,
                in_shardings=(self.param_shardings, self.state_shardings, self._rows2(c), self._row),
                out_shardings=self.state_shardings, donate_argnums=(1,))
        return self._append_fns[c](params, state, jnp.asarray(tokens_BxC, jnp.int32), jnp.asarray(n_valid_B, jnp.int32))

    def decode(self, params: Params, state: SamplerState, live_B: np.ndarray, budget_B: np.ndarray,
               rng: jax.Array) -> tuple[SamplerState, DecodeResult]:
        """Sample until every live row stops; budget_B caps new tokens per row (<= decode_steps)."""
        return self._decode(params, state, jnp.asarray(live_B, bool), jnp.asarray(budget_B, jnp.int32), rng)

    # --- jitted bodies -------------------------------------------------------------------------

    def _append_impl(self, params, state: SamplerState, tokens_BxC, n_valid_B):
        c = tokens_BxC.shape[1]
        s = self.shape.cache_len
        offs_BxC = jnp.arange(c)[None, :]
        positions_BxC = jnp.where(offs_BxC < n_valid_B[:, None], state.lengths_B[:, None] + offs_BxC, s)
        logits_BxCxV, cache = forward(self.cfg, params, tokens_BxC, positions_BxC, cache=state.cache,
                                      sharder=self.sharder)
        last_B = jnp.maximum(n_valid_B - 1, 0)
        new_logits_BxV = jnp.take_along_axis(logits_BxCxV, last_B[:, None, None], axis=1)[:, 0]
        logits_BxV = jnp.where((n_valid_B > 0)[:, None], new_logits_BxV, state.logits_BxV)
        return SamplerState(cache, state.lengths_B + n_valid_B, logits_BxV)

    def _decode_impl(self, params, state: SamplerState, live_B, budget_B, rng):
        b, s, n = self.shape.batch, self.shape.cache_len, self.shape.decode_steps
        stops_NxM = jnp.asarray(self.stops_NxM)
        m = stops_NxM.shape[1]
        rows_B = jnp.arange(b)
        budget_B = jnp.minimum(budget_B, n)
        live_B = live_B & (budget_B > 0) & (state.lengths_B < s)

        def cond(carry):
            step, _, live, *_ = carry
            return (step < n) & jnp.any(live)

        def body(carry):
            step, st, live, hist_BxM, toks, lps, num_B, stop_B = carry
            tok_B, lp_B = sample_tokens(st.logits_BxV, jax.random.fold_in(rng, step), self.sampling)
            idx_B = jnp.where(live, num_B, n)
            toks = toks.at[rows_B, idx_B].set(tok_B, mode="drop")
            lps = lps.at[rows_B, idx_B].set(lp_B, mode="drop")
            num_B = num_B + live
            hist_BxM = jnp.where(live[:, None], jnp.concatenate([hist_BxM[:, 1:], tok_B[:, None]], axis=1), hist_BxM)
            match_BxN = jnp.all((stops_NxM[None] == -1) | (stops_NxM[None] == hist_BxM[:, None, :]), axis=-1)
            hit_B = live & jnp.any(match_BxN, axis=-1)
            stop_B = jnp.where(hit_B, jnp.argmax(match_BxN, axis=-1), stop_B)
            # feed the sampled token so the cache holds it (needed to continue after a tool call)
            pos_B = jnp.where(live, st.lengths_B, s)
            logits_Bx1xV, cache = forward(self.cfg, params, tok_B[:, None], pos_B[:, None], cache=st.cache,
                                          sharder=self.sharder)
            lengths_B = st.lengths_B + live
            logits_BxV = jnp.where(live[:, None], logits_Bx1xV[:, 0], st.logits_BxV)
            live = live & ~hit_B & (num_B < budget_B) & (lengths_B < s)
            return step + 1, SamplerState(cache, lengths_B, logits_BxV), live, hist_BxM, toks, lps, num_B, stop_B

        init = (jnp.int32(0), state, live_B, jnp.full((b, m), -2, jnp.int32), jnp.zeros((b, n), jnp.int32),
                jnp.zeros((b, n), jnp.float32), jnp.zeros((b,), jnp.int32), jnp.full((b,), NO_STOP, jnp.int32))
        _, state, _, _, toks, lps, num_B, stop_B = jax.lax.while_loop(cond, body, init)
        return state, DecodeResult(toks, lps, num_B, stop_B)
