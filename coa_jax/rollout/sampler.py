"""Device side of generation: append tokens to a KV cache, decode until stop. Jitted once.

The state of a batch of rows lives on device between calls, including each row's control:
  cache          KVCache, [B, K, S, D] per layer; slot index == token position
  lengths_B      tokens in the cache per row (the next token's position)
  logits_BxV     next-token logits of each row (after its last cached token)
  active_B       the row decodes in the next `decode` call
  limit_B        the row halts when its length reaches this (its token budget)
  seed_B         the row's random stream (see `sampling.row_keys`)
  free_actions_B action closing tags the row may still write without halting (simulated tools)
  hist_BxM       the row's last M sampled tokens, for stop sequences spanning decode calls

`append` writes a chunk of given tokens (a prompt, a tool observation, a forced answer trigger)
to chosen rows; `control` sets the control fields of chosen rows; `decode` samples while rows are
active. Rows halt on device and stay halted until the host re-activates them, so a decode call
needs no per-call host input and the host never has to block on a token to keep rows in order.

Stop sequences are multi-token, matched inside the loop, and come in three kinds: HALT (eos: the
row halts), ACTION (a tool's closing tag: halts unless the row has free actions left, which are
then decremented) and MARK (reported per token, never halts: observation tags, `</think>`).
Rows that are not active feed their token at a position past the window, which the cache
scatter drops. Each call works on a window of the first W cache slots (W from a short ladder of
sizes, see `window`), so its cost follows the longest row, not the cache length. Shapes are static
per (batch, window, chunk bucket, decode steps): no per-step recompiles.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from coa_jax.models.decoder import KVCache, init_cache
from coa_jax.models.model_config import ModelConfig
from coa_jax.models.params import (Params, cache_shardings, compute_dtype_params, forward, head_logits,
                                   needs_narrowing, param_shardings)
from coa_jax.rollout.sampling import SamplingParams, row_keys, sample_tokens
from coa_jax.sharding.rules import Sharder

NO_STOP = -1  # stop reason: ran out of budget/steps (no halting stop sequence matched)
HALT, ACTION, MARK = 0, 1, 2  # stop sequence kinds


class SamplerState(NamedTuple):
    cache: KVCache
    lengths_B: jax.Array
    logits_BxV: jax.Array
    active_B: jax.Array
    limit_B: jax.Array
    seed_B: jax.Array
    free_actions_B: jax.Array
    hist_BxM: jax.Array


class DecodeResult(NamedTuple):
    tokens_BxN: jax.Array  # sampled tokens, row b valid for the first num_B[b]
    logprobs_BxN: jax.Array  # their log-probs under the sampling distribution
    num_B: jax.Array  # tokens generated per row in this call
    stop_B: jax.Array  # index of the stop sequence that halted the row, or NO_STOP
    marks_BxN: jax.Array  # index of a stop sequence (any kind) ending at each token, or -1
    halted_B: jax.Array  # the row was active when the call began and is not any more


class RowControl(NamedTuple):
    """Control fields for the rows where `mask_B` is set (numpy arrays of length B)."""

    mask_B: np.ndarray
    reset_B: np.ndarray  # empty the row (length 0) before anything is appended
    active_B: np.ndarray
    limit_B: np.ndarray
    seed_B: np.ndarray
    free_actions_B: np.ndarray


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
    """Jitted append/control/decode for one model config, batch shape and sampling setting.

    Args:
      cfg, sharder: the model and the mesh/rules it is sharded with (sampling rules).
      shape: batch rows, cache length, tokens per decode call.
      sampling: greedy/temperature/top-p/top-k (static).
      stop_sequences: token-id sequences; `stop_kinds` gives each one's kind (default HALT).
      exit_after_halts: a decode call returns once this many rows halted in it (0: only when every
        row has halted or `decode_steps` tokens were generated).
    """

    def __init__(self, cfg: ModelConfig, sharder: Sharder, shape: SamplerShape, sampling: SamplingParams,
                 stop_sequences: Sequence[Sequence[int]] = (), *, stop_kinds: Sequence[int] | None = None,
                 exit_after_halts: int = 0):
        self.cfg, self.sharder, self.shape, self.sampling = cfg, sharder, shape, sampling
        self.stops_SxM = stop_table(stop_sequences)
        kinds = [HALT] * len(stop_sequences) if stop_kinds is None else list(stop_kinds)
        if len(kinds) != len(stop_sequences):
            raise ValueError(f"{len(kinds)} stop kinds for {len(stop_sequences)} stop sequences")
        self.kinds_S = np.asarray(kinds or [MARK], np.int32)
        self.exit_after_halts = exit_after_halts
        b, m = shape.batch, self.stops_SxM.shape[1]
        self.param_shardings = param_shardings(cfg, sharder)
        row = sharder.sharding(("batch",), (b,))
        self._row = row
        self._rows2 = lambda n: sharder.sharding(("batch", "length"), (b, n))
        self.state_shardings = SamplerState(cache_shardings(cfg, sharder, b, shape.cache_len), row,
                                            sharder.sharding(("batch", "vocab"), (b, cfg.vocab_size)),
                                            row, row, row, row, self._rows2(m))
        self._append_fns: dict[tuple[int, int], callable] = {}
        self._decode_fns: dict[int, callable] = {}
        self._control = jax.jit(self._control_impl, in_shardings=(self.state_shardings, RowControl(*[row] * 6)),
                                out_shardings=self.state_shardings, donate_argnums=(0,))
        # built once: a jit of a fresh closure per call would compile again on every rollout
        self._zeros = jax.jit(self._zeros_impl, out_shardings=self.state_shardings)
        self._narrow = jax.jit(functools.partial(compute_dtype_params, cfg), out_shardings=self.param_shardings)

    def prepare(self, params: Params) -> Params:
        """`params` in this sampler's shardings and compute dtype (once per weight update)."""
        placed = jax.device_put(params, self.param_shardings)
        return self._narrow(placed) if needs_narrowing(self.cfg, placed) else placed

    def init_state(self) -> SamplerState:
        """An empty cache (created in its shardings); every row inactive, seed = row index."""
        return self._zeros()

    def _zeros_impl(self) -> SamplerState:
        cfg, s = self.cfg, self.shape
        m = self.stops_SxM.shape[1]
        zb = jnp.zeros((s.batch,), jnp.int32)
        return SamplerState(init_cache(cfg, s.batch, s.cache_len), zb,
                            jnp.zeros((s.batch, cfg.vocab_size), jnp.float32),
                            jnp.zeros((s.batch,), bool), zb, jnp.arange(s.batch, dtype=jnp.uint32), zb,
                            jnp.full((s.batch, m), -2, jnp.int32))

    def window(self, longest: int) -> int:
        """The cache window a call needs when no row will be longer than `longest` tokens.

        Calls attend to (and the decoder copies) only this many slots, so a short batch in a long
        cache is cheap. Windows grow by about 1.5x from 128 (multiples of 64), up to the cache
        length: few compiled programs, at most ~1.5x the slots needed.
        """
        size = 128
        while size < longest:
            size = -(-size * 3 // 2 // 64) * 64
        return min(size, self.shape.cache_len)

    def append(self, params: Params, state: SamplerState, tokens_BxC: np.ndarray, n_valid_B: np.ndarray, *,
               window: int | None = None) -> SamplerState:
        """Write the first n_valid_B[b] tokens of row b into the cache (0 leaves the row untouched).

        Args:
          window: see `window`; every appended row must end within it (default: the whole cache).
        """
        c = tokens_BxC.shape[1]
        w = self.shape.cache_len if window is None else window
        if (c, w) not in self._append_fns:
            self._append_fns[(c, w)] = jax.jit(
                functools.partial(self._append_impl, window=w),
                in_shardings=(self.param_shardings, self.state_shardings, self._rows2(c), self._row),
                out_shardings=self.state_shardings, donate_argnums=(1,))
        return self._append_fns[(c, w)](params, state, jnp.asarray(tokens_BxC, jnp.int32),
                                        jnp.asarray(n_valid_B, jnp.int32))

    def control(self, state: SamplerState, rows: RowControl) -> SamplerState:
        """Set the control fields of the rows in `rows.mask_B` (and empty those in `reset_B`)."""
        dtypes = (bool, bool, bool, np.int32, np.uint32, np.int32)
        return self._control(state, RowControl(*(jnp.asarray(a, d) for a, d in zip(rows, dtypes))))

    def decode(self, params: Params, state: SamplerState, live_B: np.ndarray | None = None,
               budget_B: np.ndarray | None = None, rng: jax.Array | None = None, *,
               window: int | None = None) -> tuple[SamplerState, DecodeResult]:
        """Sample while rows are active; returns the new state and this call's tokens.

        Args:
          live_B / budget_B: when given, first make exactly the `live_B` rows active with a budget of
            `budget_B` new tokens each (capped by `decode_steps`); when None, the rows' control
            state set by `control` decides.
          rng: the base key of every row's random stream.
          window: see `window` (default: the whole cache). The call returns early, rows still
            active, once a row reaches the window's end.
        """
        if live_B is not None:
            b, n = self.shape.batch, self.shape.decode_steps
            budget = np.minimum(np.asarray(budget_B if budget_B is not None else np.full((b,), n)), n)
            lengths = np.asarray(jax.device_get(state.lengths_B))
            ones = np.ones((b,), bool)
            state = self.control(state, RowControl(ones, ~ones, np.asarray(live_B, bool), lengths + budget,
                                                   np.asarray(jax.device_get(state.seed_B)), np.zeros((b,), np.int32)))
        w = self.shape.cache_len if window is None else window
        if w not in self._decode_fns:
            steps, row = self._rows2(self.shape.decode_steps), self._row
            self._decode_fns[w] = jax.jit(
                functools.partial(self._decode_impl, window=w),
                in_shardings=(self.param_shardings, self.state_shardings, self.sharder.replicated()),
                out_shardings=(self.state_shardings, DecodeResult(steps, steps, row, row, steps, row)),
                donate_argnums=(1,))
        return self._decode_fns[w](params, state, jax.random.key(0) if rng is None else rng)

    # --- jitted bodies -------------------------------------------------------------------------

    @staticmethod
    def _view(cache: KVCache, window: int) -> KVCache:
        return cache.map(lambda a: a[:, :, :window])

    @staticmethod
    def _write_back(cache: KVCache, view: KVCache) -> KVCache:
        return KVCache(tuple(a.at[:, :, :view.length].set(b) for a, b in zip(cache.k, view.k)),
                       tuple(a.at[:, :, :view.length].set(b) for a, b in zip(cache.v, view.v)))

    def _append_impl(self, params, state: SamplerState, tokens_BxC, n_valid_B, *, window: int):
        c = tokens_BxC.shape[1]
        offs_BxC = jnp.arange(c)[None, :]
        # positions >= window (padding, untouched rows) are dropped by the cache scatter
        positions_BxC = jnp.where(offs_BxC < n_valid_B[:, None], state.lengths_B[:, None] + offs_BxC, window)
        hidden_BxCxE, view = forward(self.cfg, params, tokens_BxC, positions_BxC,
                                     cache=self._view(state.cache, window), sharder=self.sharder, return_hidden=True)
        cache = self._write_back(state.cache, view)
        last_B = jnp.maximum(n_valid_B - 1, 0)
        # the output head on each row's last token only (not on all C: [B, C, V] logits)
        hidden_Bx1xE = jnp.take_along_axis(hidden_BxCxE, last_B[:, None, None], axis=1)
        new_logits_BxV = head_logits(self.cfg, params, hidden_Bx1xE, self.sharder)[:, 0]
        touched_B = n_valid_B > 0
        logits_BxV = jnp.where(touched_B[:, None], new_logits_BxV, state.logits_BxV)
        # appended tokens never complete a stop sequence the policy started
        hist_BxM = jnp.where(touched_B[:, None], -2, state.hist_BxM)
        return state._replace(cache=cache, lengths_B=state.lengths_B + n_valid_B, logits_BxV=logits_BxV,
                              hist_BxM=hist_BxM)

    def _control_impl(self, state: SamplerState, rows: RowControl):
        m = rows.mask_B

        def pick(new, old):
            return jnp.where(m, new.astype(old.dtype), old)

        lengths = jnp.where(m & rows.reset_B, 0, state.lengths_B)
        return state._replace(lengths_B=lengths, active_B=pick(rows.active_B, state.active_B),
                              limit_B=pick(rows.limit_B, state.limit_B), seed_B=pick(rows.seed_B, state.seed_B),
                              free_actions_B=pick(rows.free_actions_B, state.free_actions_B),
                              hist_BxM=jnp.where((m & rows.reset_B)[:, None], -2, state.hist_BxM))

    def _decode_impl(self, params, state: SamplerState, rng, *, window: int):
        b, s, n = self.shape.batch, window, self.shape.decode_steps
        full_cache = state.cache
        state = state._replace(cache=self._view(full_cache, window))
        stops_SxM = jnp.asarray(self.stops_SxM)
        kinds_S = jnp.asarray(self.kinds_S)
        rows_B = jnp.arange(b)
        asked_B = state.active_B
        cap = self.shape.cache_len  # no row grows past the cache, whatever its limit
        state = state._replace(active_B=asked_B & (state.lengths_B < jnp.minimum(state.limit_B, cap)))

        def cond(carry):
            step, st, halts, *_ = carry
            # a row at the window's end pauses the call (it stays active for a wider window)
            more = (step < n) & jnp.any(st.active_B) & ~jnp.any(st.active_B & (st.lengths_B >= s))
            return more & (halts < self.exit_after_halts) if self.exit_after_halts else more

        def body(carry):
            step, st, halts, toks, lps, marks, num_B, stop_B = carry
            live = st.active_B
            keys = row_keys(rng, st.seed_B, st.lengths_B)
            tok_B, lp_B = sample_tokens(st.logits_BxV, keys, self.sampling)
            idx_B = jnp.where(live, num_B, n)
            toks = toks.at[rows_B, idx_B].set(tok_B, mode="drop")
            lps = lps.at[rows_B, idx_B].set(lp_B, mode="drop")
            num_B = num_B + live
            hist_BxM = jnp.where(live[:, None], jnp.concatenate([st.hist_BxM[:, 1:], tok_B[:, None]], axis=1),
                                 st.hist_BxM)
            match_BxS = jnp.all((stops_SxM[None] == -1) | (stops_SxM[None] == hist_BxM[:, None, :]), axis=-1)
            match_BxS = match_BxS & live[:, None]
            first_B = jnp.argmax(match_BxS, axis=-1).astype(jnp.int32)
            marks = marks.at[rows_B, idx_B].set(jnp.where(jnp.any(match_BxS, -1), first_B, -1), mode="drop")
            is_action_S = kinds_S == ACTION
            action_hit_B = jnp.any(match_BxS & is_action_S[None], axis=-1)
            no_free_B = st.free_actions_B <= 0
            halting_BxS = match_BxS & ((kinds_S == HALT)[None] | (is_action_S[None] & no_free_B[:, None]))
            hit_B = jnp.any(halting_BxS, axis=-1)
            free_B = st.free_actions_B - (action_hit_B & ~hit_B)
            stop_B = jnp.where(hit_B, jnp.argmax(halting_BxS, axis=-1).astype(jnp.int32), stop_B)
            # feed the sampled token so the cache holds it (needed to continue after a tool call)
            pos_B = jnp.where(live, st.lengths_B, s)
            logits_Bx1xV, cache = forward(self.cfg, params, tok_B[:, None], pos_B[:, None], cache=st.cache,
                                          sharder=self.sharder)
            lengths_B = st.lengths_B + live
            logits_BxV = jnp.where(live[:, None], logits_Bx1xV[:, 0], st.logits_BxV)
            still_B = live & ~hit_B & (lengths_B < jnp.minimum(st.limit_B, cap))
            halts = halts + jnp.sum(live & ~still_B)
            st = st._replace(cache=cache, lengths_B=lengths_B, logits_BxV=logits_BxV, active_B=still_B,
                             free_actions_B=free_B, hist_BxM=hist_BxM)
            return step + 1, st, halts, toks, lps, marks, num_B, stop_B

        init = (jnp.int32(0), state, jnp.int32(0), jnp.zeros((b, n), jnp.int32), jnp.zeros((b, n), jnp.float32),
                jnp.full((b, n), -1, jnp.int32), jnp.zeros((b,), jnp.int32), jnp.full((b,), NO_STOP, jnp.int32))
        _, state, _, toks, lps, marks, num_B, stop_B = jax.lax.while_loop(cond, body, init)
        state = state._replace(cache=self._write_back(full_cache, state.cache))
        return state, DecodeResult(toks, lps, num_B, stop_B, marks, asked_B & ~state.active_B)
