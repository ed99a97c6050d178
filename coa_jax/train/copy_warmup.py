"""A copy warm-up for a stage that starts from random weights: short rows of random tokens, repeated.

    params = run_copy_warmup(warmup, model_cfg, params, sharder, tokenizer, out / "copy_warmup", seed=0)

Each row is `length / 2` random tokens followed by the same tokens rotated by a random offset, and
the loss is on the second half: predicting it needs an induction head (find the earlier occurrence
of the current token, copy the token after it). A small transformer learns that circuit quickly on
short rows and, once it has it, learns to look values up in long contexts (search results) within a
few hundred steps. Without it, the default 2-layer reasoner trained on world text never copies a
value out of its search results: the circuit does not form on long rows in the steps the pipeline
has, and every training fact can be memorised instead.

The warm-up is its own resumable run in OUT/copy_warmup (checkpoints, metrics.jsonl, DONE) with its
own AdamW (linear warmup, then constant); the stage then starts from the weights it ends with.
"""

from __future__ import annotations

import dataclasses
import pathlib

import jax
import numpy as np

from coa_jax.data.provenance import Provenance
from coa_jax.data.streams import SFTStream
from coa_jax.data.tokenize_sft import TokenizedExample
from coa_jax.models.params import param_shardings
from coa_jax.runtime.global_batch import micro_rows
from coa_jax.train.loop import run_loop
from coa_jax.train.optimizer import OptimConfig, make_optimizer
from coa_jax.train.sft import NextTokenBody, batch_sharding
from coa_jax.train.step import init_train_state


@dataclasses.dataclass(frozen=True)
class CopyWarmupConfig:
    """Copy warm-up before a random-init stage (`steps` 0: off)."""

    steps: int = 0
    batch_rows: int = 48
    length: int = 32  # tokens per row: a random half, then that half rotated
    lr: float = 3e-3
    warmup_steps: int = 30

    def errors(self) -> list[tuple[str, str]]:
        out = []
        if self.steps < 0:
            out.append(("steps", f"must be >= 0, got {self.steps}"))
        if self.batch_rows <= 0:
            out.append(("batch_rows", f"must be > 0, got {self.batch_rows}"))
        if self.length < 8 or self.length % 2:
            out.append(("length", f"must be even and >= 8 (two halves of >= 4 tokens), got {self.length}"))
        if self.lr <= 0:
            out.append(("lr", f"must be > 0, got {self.lr}"))
        if self.warmup_steps < 0:
            out.append(("warmup_steps", f"must be >= 0, got {self.warmup_steps}"))
        return out


def copy_examples(count: int, length: int, token_ids: np.ndarray, seed: int) -> list[TokenizedExample]:
    """`count` rows: a random half drawn from `token_ids`, then the half rotated by 2..half-2.

    Labels mark the first half PROMPT (context, no loss) and the second POLICY (targets).
    """
    half = length // 2
    rng = np.random.default_rng(seed)
    first = token_ids[rng.integers(0, len(token_ids), (count, half))]
    shifts = rng.integers(2, max(3, half - 1), count)
    labels = np.asarray([int(Provenance.PROMPT)] * half + [int(Provenance.POLICY)] * half, np.int8)
    return [TokenizedExample(np.concatenate([row, np.roll(row, int(s))]).astype(np.int32), labels.copy())
            for row, s in zip(first, shifts)]


def ordinary_token_ids(tokenizer, vocab_size: int) -> np.ndarray:
    """Ids the rows draw from: the tokenizer's, below `vocab_size`, without special or added tokens."""
    special = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    ids = np.setdiff1d(np.arange(min(len(tokenizer), vocab_size), dtype=np.int32), np.fromiter(special, np.int32))
    if len(ids) < 16:
        raise ValueError(f"the copy warm-up needs at least 16 ordinary token ids; the tokenizer has {len(ids)}")
    return ids


def run_copy_warmup(warmup: CopyWarmupConfig, model_cfg, params, sharder, tokenizer, out: str | pathlib.Path, *,
                    seed: int, loop_cfg):
    """Train `params` on copy rows for `warmup.steps` steps in `out` (resuming there); returns the new params.

    Multi-host: every process builds only its rows of each batch, as the stages do.
    """
    from coa_jax.config.loading import to_dict  # here: the config schema imports this module

    rows, length = warmup.batch_rows, warmup.length
    multihost = jax.process_count() > 1
    mine = micro_rows(batch_sharding(sharder, 1, rows, length), 1, rows, length) if multihost else None
    examples = copy_examples(warmup.steps * rows, length, ordinary_token_ids(tokenizer, model_cfg.vocab_size), seed)
    stream = SFTStream(examples, rows=rows, length=length, seed=seed, num_epochs=None, local_rows=mine)
    optimizer = make_optimizer(OptimConfig(lr=warmup.lr, warmup_steps=min(warmup.warmup_steps, warmup.steps),
                                           decay="constant", weight_decay=0.01), warmup.steps, params)
    state = init_train_state(params, optimizer, param_shardings(model_cfg, sharder))
    body = NextTokenBody(model_cfg, sharder, stream, include_observations=False, optimizer=optimizer,
                         state_shardings=jax.tree.map(lambda x: x.sharding, state), micro_batches=1,
                         global_rows=rows if multihost else None)
    result = run_loop(out, state, warmup.steps, body, loop_cfg, meta={"stage": "copy_warmup"},
                      model_dict=to_dict(model_cfg), progress="copy-warmup",
                      get_data_state=body.get_state, set_data_state=body.set_state)
    return result.state.params
