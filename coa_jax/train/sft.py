"""Supervised stage bodies: next-token SFT (the base reasoner, SFT-2, SFT-3) and SFT-1 contrastive.

Each body pulls fixed-shape batches from a resumable stream (its position is saved with every
checkpoint), splits them into microbatches and runs the shared jitted step. SFT-2 and SFT-3 read
the same collated data; only the mask differs (observations excluded / included).
"""

from __future__ import annotations

import numpy as np

from coa_jax.data.collate import SFTBatch
from coa_jax.models.model_config import ModelConfig
from coa_jax.sharding.rules import Sharder
from coa_jax.train.logprobs import token_logprobs
from coa_jax.train.losses import ContrastiveParams, contrastive_loss, masked_nll
from coa_jax.train.step import make_train_step


def _micro(arrays: dict[str, np.ndarray], micro: int) -> dict[str, np.ndarray]:
    return {k: v.reshape((micro, v.shape[0] // micro) + v.shape[1:]) for k, v in arrays.items()}


def _batch_shardings(sharder: Sharder, arrays: dict[str, np.ndarray]):
    names = {1: (None, "batch"), 2: (None, "batch", "length")}
    return {k: sharder.sharding(names[v.ndim - 1], v.shape) for k, v in arrays.items()}


class NextTokenBody:
    """Masked next-token NLL over packed rows; `include_observations` selects SFT-3 over SFT-2."""

    def __init__(self, model_cfg: ModelConfig, sharder: Sharder, stream, *, include_observations: bool,
                 optimizer, state_shardings, micro_batches: int):
        self.cfg, self.sharder, self.stream = model_cfg, sharder, stream
        self.include_observations = include_observations
        self.optimizer, self.state_shardings, self.micro = optimizer, state_shardings, micro_batches
        self._step = None

    def arrays(self, batch: SFTBatch) -> dict[str, np.ndarray]:
        mask = batch.loss_mask(include_observations=self.include_observations)
        return {"tokens": batch.tokens, "positions": batch.positions, "segments": batch.segment_ids, "mask": mask}

    def __call__(self, state, step: int):
        arrays = _micro(self.arrays(next(self.stream)), self.micro)
        if self._step is None:
            cfg, sharder = self.cfg, self.sharder

            def loss_fn(params, mb):
                logp, _ = token_logprobs(cfg, params, mb["tokens"], mb["positions"], mb["segments"], sharder)
                return masked_nll(logp, mb["mask"])

            self._step = make_train_step(loss_fn, self.optimizer, self.state_shardings,
                                         _batch_shardings(self.sharder, arrays))
        return self._step(state, arrays)

    def get_state(self) -> dict:
        return self.stream.get_state()

    def set_state(self, state: dict) -> None:
        self.stream.set_state(state)


class ContrastiveBody:
    """SFT-1: one CoT+A pair a row (bucketed), chosen and rejected halves in one forward pass."""

    def __init__(self, model_cfg: ModelConfig, sharder: Sharder, stream, *, params: ContrastiveParams, optimizer,
                 state_shardings, micro_batches: int):
        self.cfg, self.sharder, self.stream, self.params = model_cfg, sharder, stream, params
        self.optimizer, self.state_shardings, self.micro = optimizer, state_shardings, micro_batches
        self._steps: dict[int, object] = {}

    @staticmethod
    def arrays(batch) -> dict[str, np.ndarray]:
        c, r = batch.chosen, batch.rejected
        return {"c_tokens": c.tokens, "c_positions": c.positions, "c_segments": c.segment_ids,
                "c_mask": c.loss_mask(include_observations=True),
                "r_tokens": r.tokens, "r_positions": r.positions, "r_segments": r.segment_ids,
                "r_mask": r.loss_mask(include_observations=True),
                "valid": batch.pair_valid[:, 0].astype(np.float32)}  # fmt: skip

    def __call__(self, state, step: int):
        arrays = _micro(self.arrays(next(self.stream)), self.micro)
        length = arrays["c_tokens"].shape[-1]
        if length not in self._steps:
            cfg, sharder, p = self.cfg, self.sharder, self.params

            def loss_fn(params, mb):
                import jax.numpy as jnp

                cat = lambda a, b: jnp.concatenate([mb[a], mb[b]], axis=0)  # noqa: E731
                logp, _ = token_logprobs(cfg, params, cat("c_tokens", "r_tokens"), cat("c_positions", "r_positions"),
                                         cat("c_segments", "r_segments"), sharder)
                n = mb["c_tokens"].shape[0]
                return contrastive_loss(logp[:n], mb["c_mask"], logp[n:], mb["r_mask"], mb["valid"], p)

            self._steps[length] = make_train_step(loss_fn, self.optimizer, self.state_shardings,
                                                  _batch_shardings(self.sharder, arrays))
        return self._steps[length](state, arrays)

    def get_state(self) -> dict:
        return self.stream.get_state()

    def set_state(self, state: dict) -> None:
        self.stream.set_state(state)


def count_batches(stream_factory) -> int:
    """Batches in one epoch of a stream (iterates a fresh one-epoch stream; collation is cheap)."""
    return sum(1 for _ in stream_factory(num_epochs=1))
