"""Supervised stage bodies: next-token SFT (the base reasoner, SFT-2, SFT-3) and SFT-1 contrastive.

Each body pulls fixed-shape batches from a resumable stream (its position is saved with every
checkpoint), splits them into microbatches and runs the shared jitted step. SFT-2 and SFT-3 read
the same collated data; only the mask differs (observations excluded / included).
"""

from __future__ import annotations

import jax
import numpy as np

from coa_jax.data.collate import SFTBatch
from coa_jax.models.model_config import ModelConfig
from coa_jax.runtime.global_batch import to_global
from coa_jax.sharding.rules import Sharder
from coa_jax.train.logprobs import token_logprobs
from coa_jax.train.losses import ContrastiveParams, contrastive_loss, masked_nll, pair_scores
from coa_jax.train.reference import ReferenceModel
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


def _pair_logprobs(cfg: ModelConfig, sharder: Sharder, params, mb):
    """Token log-probs of a microbatch's chosen and rejected rows, in one forward pass."""
    cat = lambda a, b: jax.numpy.concatenate([mb[a], mb[b]], axis=0)  # noqa: E731
    logp, _ = token_logprobs(cfg, params, cat("c_tokens", "r_tokens"), cat("c_positions", "r_positions"),
                             cat("c_segments", "r_segments"), sharder)
    n = mb["c_tokens"].shape[0]
    return logp[:n], logp[n:]


def contrastive_loss_fn(cfg: ModelConfig, sharder: Sharder, p: ContrastiveParams):
    """loss_fn(params, microbatch) of SFT-1: chosen and rejected halves in one forward pass."""

    def loss_fn(params, mb):
        logp_c, logp_r = _pair_logprobs(cfg, sharder, params, mb)
        return contrastive_loss(logp_c, mb["c_mask"], logp_r, mb["r_mask"], mb["valid"], p, mb.get("ref_gap"))

    return loss_fn


def reference_gap_fn(cfg: ModelConfig, sharder: Sharder, p: ContrastiveParams, param_shardings,
                     shapes: dict[str, tuple[int, ...]]):
    """A jitted `(initial params, batch) -> [micro, rows]` of the initial model's Pc - Pr per pair
    (`ContrastiveParams.reference`), one microbatch at a time."""

    def fn(params, arrays):
        def one(mb):
            logp_c, logp_r = _pair_logprobs(cfg, sharder, params, mb)
            _, pc_window, pr = pair_scores(logp_c, mb["c_mask"], logp_r, mb["r_mask"], p)
            return pc_window - pr

        return jax.lax.map(one, arrays)

    return jax.jit(fn, in_shardings=(param_shardings, _batch_shardings(sharder, shapes)),
                   out_shardings=sharder.sharding((None, "batch"), shapes["valid"]))


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
                 state_shardings, micro_batches: int, global_rows: int | None = None,
                 reference: ReferenceModel | None = None):
        self.cfg, self.sharder, self.stream, self.params = model_cfg, sharder, stream, params
        self.optimizer, self.state_shardings, self.micro = optimizer, state_shardings, micro_batches
        self.global_rows = global_rows  # multi-host: the stream yields this process's rows of each batch
        if params.reference and reference is None:
            raise ValueError("sft1.contrastive.reference needs the stage's initial model (reference)")
        self.reference = reference if params.reference else None  # frozen: the stage's initial model
        self._steps: dict[int, object] = {}
        self._ref_gaps: dict[int, object] = {}

    def arrays(self, batch) -> dict[str, np.ndarray]:
        c, r, obs = batch.chosen, batch.rejected, self.params.observations
        return {"c_tokens": c.tokens, "c_positions": c.positions, "c_segments": c.segment_ids,
                "c_mask": c.loss_mask(include_observations=obs),
                "r_tokens": r.tokens, "r_positions": r.positions, "r_segments": r.segment_ids,
                "r_mask": r.loss_mask(include_observations=obs),
                "valid": batch.pair_valid[:, 0].astype(np.float32)}  # fmt: skip

    def __call__(self, state, step: int):
        arrays = _placed(self.sharder, _micro(self.arrays(next(self.stream)), self.micro), self.global_rows)
        length = arrays["c_tokens"].shape[-1]
        if self.reference is not None:
            if length not in self._ref_gaps:
                self._ref_gaps[length] = reference_gap_fn(self.cfg, self.sharder, self.params,
                                                          self.state_shardings.params,
                                                          {k: v.shape for k, v in arrays.items()})
            arrays = {**arrays, "ref_gap": self._ref_gaps[length](self.reference.params(), arrays)}
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
