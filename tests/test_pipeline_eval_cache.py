"""The pipeline's per-row evaluation cache: reused only for the same weights, settings and questions."""

from __future__ import annotations

import dataclasses
import json
import os

from coa_jax.config.loading import load_config
from coa_jax.data.formats.messages import Message
from coa_jax.pipeline import runner
from coa_jax.pipeline.plan import Row
from coa_jax.rollout.eval_data import EvalItem
from coa_jax.rollout.evaluation import EvalSettings

ITEMS = [EvalItem(f"nq-{i}", "nq", (Message("user", f"q{i}"),), f"q{i}", ("a",)) for i in range(3)]


def _stage(tmp_path, payload: bytes):
    hf = tmp_path / "sft2" / "hf"
    hf.mkdir(parents=True, exist_ok=True)
    (hf / "model.safetensors").write_bytes(payload)
    (hf / "config.json").write_text("{}")
    return hf


def test_key_follows_weights_settings_and_questions(tmp_path, monkeypatch):
    hf = _stage(tmp_path, b"weights-1")
    key = runner.eval_key(hf, EvalSettings(mode="agent"), ITEMS)
    assert runner.eval_key(hf, EvalSettings(mode="agent"), ITEMS) == key
    assert runner.eval_key(hf, EvalSettings(mode="workflow"), ITEMS) != key
    assert runner.eval_key(hf, EvalSettings(mode="agent", max_actions=2), ITEMS) != key
    assert runner.eval_key(hf, EvalSettings(mode="agent"), ITEMS[:2]) != key  # another --eval-limit
    tiered = [dataclasses.replace(i, tier="tail") for i in ITEMS]  # a world whose questions say their tier
    assert runner.eval_key(hf, EvalSettings(mode="agent"), tiered) != key
    monkeypatch.setattr(runner, "REPORT_FORMAT", runner.REPORT_FORMAT + 1)  # results written by an older report
    assert runner.eval_key(hf, EvalSettings(mode="agent"), ITEMS) != key
    monkeypatch.undo()
    st = (hf / "model.safetensors").stat()
    _stage(tmp_path, b"weights-2")  # the stage retrained: same size, new file
    os.utime(hf / "model.safetensors", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert runner.eval_key(hf, EvalSettings(mode="agent"), ITEMS) != key


def test_a_stale_cached_row_is_evaluated_again(tmp_path, monkeypatch):
    """A cached row from other weights (the stage directory was deleted and trained again) must not
    reach the table; the same weights reuse it without loading anything."""
    calls = []

    def fake_evaluate(model_cfg, params, sharder, tokenizer, items, settings, registry):
        calls.append(settings.mode)
        return [], 1.0

    monkeypatch.setattr(runner, "load_model", lambda hf, sharder: (None, None))
    monkeypatch.setattr(runner, "load_tokenizer", lambda hf: None)
    monkeypatch.setattr(runner, "evaluate", fake_evaluate)
    cfg = load_config("configs/default.py:tiny")
    row = Row("SFT-2", "sft2", "model-only")
    settings = EvalSettings()
    hf = _stage(tmp_path, b"weights-1")
    first = runner.evaluate_row(cfg, tmp_path, tmp_path / "world", row, ITEMS, settings)
    assert calls == ["model-only"] and first["key"]
    assert runner.evaluate_row(cfg, tmp_path, tmp_path / "world", row, ITEMS, settings) == first
    assert calls == ["model-only"]  # reused
    st = (hf / "model.safetensors").stat()
    _stage(tmp_path, b"weights-2")
    os.utime(hf / "model.safetensors", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    again = runner.evaluate_row(cfg, tmp_path, tmp_path / "world", row, ITEMS, settings)
    assert calls == ["model-only", "model-only"] and again["key"] != first["key"]
    assert json.loads((tmp_path / "eval" / "sft2__model-only.json").read_text())["key"] == again["key"]
