"""SFT and contrastive-pair batches: numpy arrays in frozen dataclasses, ready for the trainer.

    tok = ChatTokenizer(transformers.AutoTokenizer.from_pretrained(world.tokenizer_dir))
    examples = load_sft_examples("teacher/CoA_data.jsonl", tok, max_len=1024)
    batch, stats = collate_sft(examples[:64], length=1024)         # packed rows, SFTBatch
    mask2 = batch.loss_mask(include_observations=False)            # SFT stage 2
    mask3 = batch.loss_mask(include_observations=True)             # SFT stage 3

Endless, resumable streams of fixed-shape batches are in `coa_jax.data.streams`.

Labels are provenance (who wrote each token), not targets: the trainer predicts tokens[t] from
tokens[<t] and counts position t where `loss_mask(labels)[t]` is 1; the first token of every
segment is a prompt token, so no prediction across a segment boundary is ever counted.
Examples longer than the row are cut from the end and counted (`CollateStats`), never silently.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np

from coa_jax.data.formats.contrastive import read_contrastive_json
from coa_jax.data.formats.messages import read_messages_jsonl
from coa_jax.data.packing import bucket_length, fill_rows, first_fit
from coa_jax.data.provenance import loss_mask
from coa_jax.data.tokenize_pairs import TokenizedPair, tokenize_pair
from coa_jax.data.tokenize_sft import ChatTokenizer, TokenizedExample, tokenize_conversation


@dataclasses.dataclass(frozen=True)
class SFTBatch:
    """[B, T] int32 tokens, positions (from 0 per segment), segment ids (0 = pad), int8 labels."""

    tokens: np.ndarray
    positions: np.ndarray
    segment_ids: np.ndarray
    labels: np.ndarray

    def loss_mask(self, *, include_observations: bool) -> np.ndarray:
        """[B, T] float32: 1 where the token counts (model-written; observations if asked)."""
        return loss_mask(self.labels, include_observations=include_observations)

    @property
    def real_tokens(self) -> int:
        return int((self.segment_ids > 0).sum())

    @property
    def efficiency(self) -> float:
        """Real tokens / all token slots."""
        return self.real_tokens / max(1, self.tokens.size)


@dataclasses.dataclass(frozen=True)
class PairBatch:
    """Row-aligned pairs: segment s+1 of row b holds pair (b, s) in both `chosen` and `rejected`,
    and there both start with the same context tokens.

    `pair_valid` [B, S] says which (row, segment) slots hold a pair (S = 1 when bucketed: one pair
    a row). A pair's continuation is where `loss_mask(labels)` is 1 within its segment (the
    context is labelled PROMPT); the SFT-1 loss averages log-probs per segment.
    """

    chosen: SFTBatch
    rejected: SFTBatch
    pair_valid: np.ndarray


@dataclasses.dataclass(frozen=True)
class CollateStats:
    """What a batch (or a stream so far) holds: examples, token slots, truncation."""

    examples: int = 0
    rows: int = 0
    real_tokens: int = 0
    total_tokens: int = 0
    truncated_examples: int = 0
    truncated_tokens: int = 0

    @property
    def efficiency(self) -> float:
        return self.real_tokens / max(1, self.total_tokens)

    def __add__(self, other: CollateStats) -> CollateStats:
        return CollateStats(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))))


def batch_stats(examples: Sequence[TokenizedExample], batch: SFTBatch) -> CollateStats:
    """Counts of a batch built from `examples` (already cut to fit)."""
    cut = [ex.truncated for ex in examples]
    return CollateStats(len(examples), batch.tokens.shape[0], batch.real_tokens, batch.tokens.size,
                        sum(c > 0 for c in cut), sum(cut))  # fmt: skip


def collate_sft(examples: Sequence[TokenizedExample], *, length: int, mode: str = "pack",
                rows: int | None = None) -> tuple[SFTBatch, CollateStats]:  # fmt: skip
    """One batch from `examples`.

    Args:
      examples: tokenised examples (longer ones are cut to `length`, counted).
      length: "pack": the row length; "bucket": the longest row allowed.
      mode: "pack" (first-fit decreasing, several examples a row) or "bucket" (one a row, the row
        length the next power of two of the longest example).
      rows: rows in the batch (default: as many as needed); must hold every example.

    Raises:
      ValueError: an unknown mode, or the examples do not fit in `rows`.
    """
    cut = [ex.cut(length) for ex in examples]
    if mode == "pack":
        assignment, left = first_fit([len(ex) for ex in cut], length, max_rows=rows)
        width = length
    elif mode == "bucket":
        assignment, left = [[i] for i in range(len(cut))], []
        if rows is not None and len(cut) > rows:
            left = list(range(rows, len(cut)))
        width = bucket_length(max((len(ex) for ex in cut), default=1), maximum=length)
    else:
        raise ValueError(f"mode must be 'pack' or 'bucket', got {mode!r}")
    if left:
        raise ValueError(f"{len(left)} of {len(cut)} examples do not fit in {rows} rows of {length}")
    num_rows = rows if rows is not None else len(assignment)
    batch = SFTBatch(*fill_rows(cut, assignment, num_rows, width))
    return batch, batch_stats(cut, batch)


def collate_pairs(pairs: Sequence[TokenizedPair], *, max_len: int, rows: int | None = None, mode: str = "bucket",
                  pairs_per_row: int = 8) -> tuple[PairBatch, CollateStats]:  # fmt: skip
    """One pair batch.

    Args:
      pairs: tokenised pairs (rows longer than `max_len` are cut from the end, counted).
      max_len: "bucket": the longest row allowed; "pack": the row length.
      rows: rows in the batch (default: as many as needed); must hold every pair.
      mode: "bucket" (one pair a row, row length the next power of two of the longest) or "pack"
        (first-fit decreasing, up to `pairs_per_row` pairs a row, the same placement in both halves).
      pairs_per_row: S, the segment slots of `pair_valid` in pack mode.

    Raises:
      ValueError: an unknown mode, or the pairs do not fit in `rows`.
    """
    chosen = [p.row("chosen").cut(max_len) for p in pairs]
    rejected = [p.row("rejected").cut(max_len) for p in pairs]
    sizes = [max(len(c), len(r)) for c, r in zip(chosen, rejected)]
    if mode == "bucket":
        assignment, slots = [[i] for i in range(len(pairs))], 1
        width = bucket_length(max(sizes, default=1), maximum=max_len)
    elif mode == "pack":
        assignment, left = first_fit(sizes, max_len, max_rows=rows, max_items=pairs_per_row)
        if left:
            raise ValueError(f"{len(left)} of {len(pairs)} pairs do not fit in {rows} rows of {max_len}")
        slots, width = pairs_per_row, max_len
    else:
        raise ValueError(f"mode must be 'bucket' or 'pack', got {mode!r}")
    num_rows = rows if rows is not None else len(assignment)
    if len(assignment) > num_rows:
        raise ValueError(f"{len(pairs)} pairs do not fit in {num_rows} rows")
    return place_pairs(pairs, assignment, num_rows=num_rows, length=width, slots=slots, max_len=max_len)


def place_pairs(pairs: Sequence[TokenizedPair], assignment: Sequence[Sequence[int]], *, num_rows: int,
                length: int, slots: int, max_len: int) -> tuple[PairBatch, CollateStats]:  # fmt: skip
    """A PairBatch with pair `assignment[b][s]` in segment s+1 of row b of both halves."""
    chosen = [p.row("chosen").cut(max_len) for p in pairs]
    rejected = [p.row("rejected").cut(max_len) for p in pairs]
    c = SFTBatch(*fill_rows(chosen, assignment, num_rows, length))
    r = SFTBatch(*fill_rows(rejected, assignment, num_rows, length))
    valid = np.zeros((num_rows, slots), bool)
    for row, members in enumerate(assignment):
        if len(members) > slots:
            raise ValueError(f"row {row} holds {len(members)} pairs, more than {slots} slots")
        valid[row, : len(members)] = True
    return PairBatch(c, r, valid), batch_stats(chosen, c) + batch_stats(rejected, r)


def load_sft_examples(path: str | os.PathLike, tok: ChatTokenizer, *, max_len: int | None = None,
                      strict: bool = True, calls_as_prompt: bool = False) -> list[TokenizedExample]:  # fmt: skip
    """Tokenises every conversation of a messages JSONL file (CoT_data / CoA_data); `calls_as_prompt`
    keeps the tool calls out of the targets (`tokenize_conversation`)."""
    rows = read_messages_jsonl(path, strict=strict).rows
    return [tokenize_conversation(c.messages, tok, max_len=max_len, calls_as_prompt=calls_as_prompt) for c in rows]


def load_pair_examples(path: str | os.PathLike, tok: ChatTokenizer, *, max_len: int | None = None,
                       strict: bool = True) -> tuple[list[TokenizedPair], int]:  # fmt: skip
    """Tokenises a CoT+A pair file; returns (pairs, how many were dropped: context too long)."""
    out, dropped = [], 0
    for pair in read_contrastive_json(path, strict=strict).rows:
        tp = tokenize_pair(pair, tok, max_len=max_len)
        if tp is None:
            dropped += 1
        else:
            out.append(tp)
    return out, dropped
