"""Plain batched generation (no tools) on top of the Sampler: prompts in, token ids out."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from coa_jax.models.model_config import ModelConfig
from coa_jax.models.params import Params
from coa_jax.rollout.sampler import Sampler, SamplerShape
from coa_jax.rollout.sampling import SamplingParams
from coa_jax.sharding.rules import Sharder


def bucket(n: int, minimum: int = 16) -> int:
    """Round up to a power of two (>= minimum) so distinct lengths share compiled programs."""
    size = minimum
    while size < n:
        size *= 2
    return size


@dataclasses.dataclass(frozen=True)
class Generation:
    prompt_ids: list[int]
    output_ids: list[int]
    logprobs: list[float]
    stop_index: int  # which stop sequence ended it, or -1 (token budget)


def generate(cfg: ModelConfig, params: Params, sharder: Sharder, prompts: list[list[int]], *, max_new_tokens: int,
             sampling: SamplingParams, rng: jax.Array, stop_sequences=(), batch_multiple: int = 1) -> list[Generation]:
    """Generate for each prompt (right-padded into one batch; no re-encoding of text)."""
    if any(not p for p in prompts):
        raise ValueError("every prompt needs at least one token")
    n = len(prompts)
    batch = -(-n // batch_multiple) * batch_multiple
    longest = max(len(p) for p in prompts)
    chunk = bucket(longest)
    cache_len = bucket(longest + max_new_tokens)
    if cache_len > cfg.max_position_embeddings:
        cache_len = max(longest + max_new_tokens, 1)
    sampler = Sampler(cfg, sharder, SamplerShape(batch, cache_len, max_new_tokens), sampling, stop_sequences)
    params = sampler.prepare(params)
    tokens = np.zeros((batch, chunk), np.int32)
    n_valid = np.zeros((batch,), np.int32)
    for i, p in enumerate(prompts):
        tokens[i, :len(p)] = p
        n_valid[i] = len(p)
    state = sampler.append(params, sampler.init_state(), tokens, n_valid)
    live = np.arange(batch) < n
    state, out = sampler.decode(params, state, live, np.full((batch,), max_new_tokens), rng)
    toks, lps, num, stop = (np.asarray(jax.device_get(x)) for x in out[:4])
    return [Generation(list(prompts[i]), toks[i, :num[i]].tolist(), lps[i, :num[i]].tolist(), int(stop[i]))
            for i in range(n)]
