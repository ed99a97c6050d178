"""The copy warm-up: its rows, that it teaches a random model to copy, resume, and its config checks."""

import dataclasses
import json

import jax
import numpy as np
import pytest
from model_fixtures import TINY, single_device_sharder, tiny_params

from coa_jax.config.errors import ConfigError
from coa_jax.config.loading import load_config
from coa_jax.data.provenance import Provenance
from coa_jax.train.copy_warmup import CopyWarmupConfig, copy_examples, ordinary_token_ids, run_copy_warmup
from coa_jax.train.logprobs import token_logprobs
from coa_jax.train.loop import LoopConfig
from coa_jax.train.stages import run_sft


class _Tokenizer:
    """What the warm-up reads from a tokenizer: its length and its special / added ids."""

    all_special_ids = [0, 1]
    added_tokens_decoder = {2: "<|im_start|>"}

    def __len__(self):
        return 128


def test_copy_rows_repeat_their_first_half_rotated():
    ids = np.arange(10, 60, dtype=np.int32)
    rows = copy_examples(40, 16, ids, seed=3)
    shifts = set()
    for ex in rows:
        first, second = ex.tokens[:8], ex.tokens[8:]
        matches = [s for s in range(8) if np.array_equal(second, np.roll(first, s))]
        assert matches and all(2 <= s <= 6 for s in matches)
        shifts.add(matches[0])
        assert set(ex.tokens.tolist()) <= set(ids.tolist())
        assert ex.labels.tolist() == [Provenance.PROMPT] * 8 + [Provenance.POLICY] * 8
    assert len(shifts) > 1  # the offset varies, so no fixed-distance shortcut predicts the copy
    again = copy_examples(40, 16, ids, seed=3)
    assert all(np.array_equal(a.tokens, b.tokens) for a, b in zip(rows, again))
    assert not all(np.array_equal(a.tokens, b.tokens) for a, b in zip(rows, copy_examples(40, 16, ids, seed=4)))


def test_rows_never_draw_special_or_added_tokens_or_ids_past_the_embedding():
    ids = ordinary_token_ids(_Tokenizer(), vocab_size=100)
    assert ids.tolist() == list(range(3, 100))
    with pytest.raises(ValueError, match="at least 16 ordinary token ids"):
        ordinary_token_ids(_Tokenizer(), vocab_size=10)


def _copy_probability(cfg, params, sharder) -> float:
    """Mean teacher-forced probability of the copied tokens (second half, past its first two) on fresh rows."""
    rows = copy_examples(64, 32, np.arange(3, cfg.vocab_size, dtype=np.int32), seed=99)
    tokens = np.stack([r.tokens for r in rows])
    positions = np.broadcast_to(np.arange(32, dtype=np.int32), tokens.shape)
    logp, _ = token_logprobs(cfg, params, tokens, positions, np.ones_like(tokens), sharder)
    return float(np.exp(np.asarray(logp)[:, 18:]).mean())


@pytest.mark.slow
def test_the_warmup_teaches_a_random_model_to_copy_and_resumes_to_the_same_weights(tmp_path):
    cfg = dataclasses.replace(TINY, init_std=0.02)
    sharder = single_device_sharder()
    params = tiny_params(cfg)
    before = _copy_probability(cfg, params, sharder)
    warmup = CopyWarmupConfig(steps=200, batch_rows=48, length=32)
    loop = LoopConfig(save_every=1000, keep_checkpoints=1)
    out = tmp_path / "copy_warmup"
    trained = run_copy_warmup(warmup, cfg, params, sharder, _Tokenizer(), out, seed=0, loop_cfg=loop)
    after = _copy_probability(cfg, trained, sharder)
    # uniform guessing over 125 ids is 0.008; copying needs the induction circuit
    assert before < 0.02 and after > 0.2, (before, after)
    assert json.loads((out / "DONE").read_text())["steps"] == 200
    lines = (out / "metrics.jsonl").read_text().splitlines()
    # a rerun restores the finished run (from other initial weights it would train to others)
    again = run_copy_warmup(warmup, cfg, tiny_params(cfg, seed=1), sharder, _Tokenizer(), out, seed=0, loop_cfg=loop)
    leaves, again_leaves = jax.tree.leaves(trained), jax.tree.leaves(again)
    assert len(leaves) == len(again_leaves) and all(np.array_equal(a, b) for a, b in zip(leaves, again_leaves))
    assert (out / "metrics.jsonl").read_text().splitlines() == lines


def test_copy_warmup_settings_are_checked_by_key():
    with pytest.raises(ConfigError) as err:
        load_config("configs/default.py:tiny", ["reasoner.copy_warmup.length=7", "reasoner.copy_warmup.lr=0"])
    text = str(err.value)
    assert "reasoner.copy_warmup.length" in text and "reasoner.copy_warmup.lr" in text


def test_a_stage_from_a_checkpoint_refuses_the_copy_warmup(tmp_path):
    cfg = load_config("configs/default.py:tiny", ["sft2.copy_warmup.steps=5"])
    with pytest.raises(ConfigError, match="sft2.copy_warmup.steps.*starts from 'runs/reasoner'"):
        run_sft(cfg, "2", init="runs/reasoner", out=tmp_path / "sft2")
    assert not (tmp_path / "sft2").exists()  # refused before anything is built or written
