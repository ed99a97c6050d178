"""Supervised stage bodies: next-token SFT (the base reasoner, SFT-2, SFT-3) and SFT-1 contrastive.

Each body pulls fixed-shape batches from a resumable stream (its position is saved with every
checkpoint), splits them into microbatches and runs the shared jitted step. SFT-2 and SFT-3 read
the same collated data; only the mask differs (observations excluded / included).
"""

from __future__ import annotations

import numpy as np

from coa_jax.data.collate import SFTBatch
from coa_jax.models.model_config import ModelConfig
from coa_jax.runtime.global_batch import to_global
from coa_jax.sharding.rules import Sharder
from coa_jax.train.logprobs import token_logprobs
from coa_jax.train.losses import ContrastiveParams, contrastive_loss, masked_nll
from coa_jax.train.step import make_train_step


def _micro(arrays: dict[str, np.ndarray], micro: int) -> dict[str, np.ndarray]:
    return {k: v.reshape((micro, v.shape[0] // micro) + v.shape[1:]) for k, v in arrays.items()}


def _batch_shardings(sharder: Sharder, shapes: dict[str, tuple[int, ...]]):
    """[A, b] / [A, b, T] leaves: the microbatch axis whole, rows over the batch axes."""
    names = {2: (None, "batch"), 3: (None, "batch", "length")}
    return {k: sharder.sharding(names[len(shape)], shape) for k, shape in shapes.items()}


def batch_sharding(sharder: Sharder, micro_batches: int, rows: int, length: int):
    """The sharding of a [micro_batches, rows/micro_batches, length] batch leaf (what each device holds)."""
    return sharder.sharding((None, "batch", "length"), (micro_batches, rows // micro_batches, length))


def _placed(sharder: Sharder, arrays: dict[str, np.ndarray], global_rows: int | None) -> dict:
    """Multi-host: this process's rows -> global arrays (`global_rows` per microbatch); else as is."""
    if global_rows is None:
        return arrays
    shapes = {k: (v.shape[0], global_rows) + v.shape[2:] for k, v in arrays.items()}
    return to_global(arrays, _batch_shardings(sharder, shapes), global_rows=global_rows)


def next_token_loss_fn(cfg: ModelConfig, sharder: Sharder):
    """loss_fn(params, microbatch) of SFT-2/3 and the reasoner: masked next-token NLL (sum, count)."""

    def loss_fn(params, mb):
        logp, _ = token_logprobs(cfg, params, mb["tokens"], mb["positions"], mb["segments"], sharder)
        return masked_nll(logp, mb["mask"])

    return loss_fn


def contrastive_loss_fn(cfg: ModelConfig, sharder: Sharder, p: ContrastiveParams):
    """loss_fn(params, microbatch) of SFT-1: chosen and rejected halves in one forward pass."""

    def loss_fn(params, mb):
        import jax.numpy as jnp

        cat = lambda a, b: jnp.concatenate([mb[a], mb[b]], axis=0)  # noqa: E731
        logp, _ = token_logprobs(cfg, params, cat("c_tokens", "r_tokens"), cat("c_positions", "r_positions"),
                                 cat("c_segments", "r_segments"), sharder)
        n = mb["c_tokens"].shape[0]
        return contrastive_loss(logp[:n], mb["c_mask"], logp[n:], mb["r_mask"], mb["valid"], p)

    return loss_fn


class NextTokenBody:
    """Masked next-token NLL over packed rows; `include_observations` selects SFT-3 over SFT-2."""

    def __init__(self, model_cfg: ModelConfig, sharder: Sharder, stream, *, include_observations: bool,
                 optimizer, state_shardings, micro_batches: int, global_rows: int | None = None):
        self.cfg, self.sharder, self.stream = model_cfg, sharder, stream
        self.include_observations = include_observations
        self.optimizer, self.state_shardings, self.micro = optimizer, state_shardings, micro_batches
        self.global_rows = global_rows  # multi-host: the stream yields this process's rows of each batch
        self._step = None

    def arrays(self, batch: SFTBatch) -> dict[str, np.ndarray]:
        mask = batch.loss_mask(include_observations=self.include_observations)
        return {"tokens": batch.tokens, "positions": batch.positions, "segments": batch.segment_ids, "mask": mask}

    def __call__(self, state, step: int):
        arrays = _placed(self.sharder, _micro(self.arrays(next(self.stream)), self.micro), self.global_rows)
        if self._step is None:
            shapes = {k: v.shape for k, v in arrays.items()}
            self._step = make_train_step(next_token_loss_fn(self.cfg, self.sharder), self.optimizer,
                                         self.state_shardings, _batch_shardings(self.sharder, shapes))
        return self._step(state, arrays)

    def get_state(self) -> dict:
        return self.stream.get_state()

    def set_state(self, state: dict) -> None:
        self.stream.set_state(state)


class ContrastiveBody:
    """SFT-1: one CoT+A pair a row (bucketed), chosen and rejected halves in one forward pass."""

    def __init__(self, model_cfg: ModelConfig, sharder: Sharder, stream, *, params: ContrastiveParams, optimizer,
                 state_shardings, micro_batches: int, global_rows: int | None = None):
        self.cfg, self.sharder, self.stream, self.params = model_cfg, sharder, stream, params
        self.optimizer, self.state_shardings, self.micro = optimizer, state_shardings, micro_batches
        self.global_rows = global_rows  # multi-host: the stream yields this process's rows of each batch
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
        arrays = _placed(self.sharder, _micro(self.arrays(next(self.stream)), self.micro), self.global_rows)
        length = arrays["c_tokens"].shape[-1]
        if length not in self._steps:
            shapes = {k: v.shape for k, v in arrays.items()}
            self._steps[length] = make_train_step(contrastive_loss_fn(self.cfg, self.sharder, self.params),
                                                  self.optimizer, self.state_shardings,
                                                  _batch_shardings(self.sharder, shapes))
        return self._steps[length](state, arrays)

    def get_state(self) -> dict:
        return self.stream.get_state()

    def set_state(self, state: dict) -> None:
        self.stream.set_state(state)


def count_batches(stream_factory) -> int:
    """Batches in one epoch of a stream (iterates a fresh one-epoch stream; collation is cheap)."""
    return sum(1 for _ in stream_factory(num_epochs=1))
