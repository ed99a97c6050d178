"""Benchmark plumbing: alternation, summaries, FLOP and byte counts, the table, and bench.py end to end."""

import json
import os
import subprocess
import sys

import numpy as np

import jax

from coa_jax.bench import harness
from coa_jax.bench.d1_decode import step_bytes
from coa_jax.bench.shapes import attention_flops, matmul_params, model_shape
from coa_jax.bench.t1_sft import packed_batch, step_flops
from coa_jax.models.params import abstract_params
from model_fixtures import TINY

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_alternate_rotates_order_and_warms_up_first():
    calls = []
    runners = {n: (lambda i, n=n: calls.append((n, i)) or harness.Sample(1.0)) for n in "ABC"}
    out = harness.alternate(runners, 3, warmup=1, log=None)
    assert calls[:3] == [("A", -1), ("B", -1), ("C", -1)]
    assert [n for n, _ in calls[3:]] == list("ABC" "BCA" "CAB")
    assert {k: len(v) for k, v in out.items()} == {"A": 3, "B": 3, "C": 3}


def test_summary_median_and_spread():
    s = harness.Summary.of([harness.Sample(x, 2 * x, 10.0) for x in (3.0, 1.0, 2.0, 10.0)])
    assert s.median_s == 2.5 and s.min_s == 1.0 and s.max_s == 10.0 and s.cpu_median_s == 5.0 and s.runs == 4
    assert s.iqr_s > 0


def test_matmul_params_counts_every_weight_but_the_embedding_lookup():
    def used_in_matmul(path):
        name = jax.tree_util.keystr(path)
        return "kernel" in name or "lm_head" in name

    leaves = jax.tree_util.tree_leaves_with_path(abstract_params(TINY))
    counted = sum(int(np.prod(x.shape)) for path, x in leaves if used_in_matmul(path))
    assert not TINY.tie_embeddings  # the head is its own weight here (tied: the embedding is reused)
    assert matmul_params(TINY) == counted


def test_packed_batch_segments_and_flops():
    b = packed_batch(4, 128, 100, seed=1)
    real = b.segments > 0
    assert b.tokens.shape == (4, 128) and b.tokens.max() < 100
    assert not b.mask[~real].any() and not b.mask[b.positions == 0].any()
    starts = (b.positions == 0) & real
    assert (b.segments[starts] >= 1).all()
    # within a segment positions count up by one
    same = (b.segments[:, 1:] == b.segments[:, :-1]) & real[:, 1:]
    assert (b.positions[:, 1:][same] == b.positions[:, :-1][same] + 1).all()
    cfg = model_shape("world")
    tokens = real.sum()
    assert step_flops(cfg, b) == 6 * matmul_params(cfg) * tokens + 3 * attention_flops(cfg, 1) * b.visible_keys


def test_decode_bytes_grow_with_batch_and_context():
    cfg = model_shape("world")
    base = step_bytes(cfg, 1, 0, 4)
    assert base == matmul_params(cfg) * 4
    kv_per_token = 2 * cfg.num_layers * cfg.num_kv_heads * cfg.resolved_head_dim * 4
    assert step_bytes(cfg, 2, 100, 4) - base == 2 * 100 * kv_per_token


def test_format_table_aligns_and_marks_missing():
    text = harness.format_table([{"a": "x", "b": 1.234}, {"a": "long", "b": None}],
                                [("a", "name", ""), ("b", "value", ".1f")])
    lines = text.splitlines()
    assert lines[0].split() == ["name", "value"]
    assert lines[2].split() == ["x", "1.2"] and lines[3].split() == ["long", "-"]


def test_bench_t1_without_peer_writes_json(tmp_path):
    out = tmp_path / "t1.json"
    env = dict(os.environ, XLA_FLAGS="")  # one real CPU device, as a user's run
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "launch", "bench.py"), "t1", "--quick", "--no-peer",
                           "--batch", "2", "--seq", "64", "--repeats", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    (row,) = doc["rows"]
    assert row["setup"] == "coa_jax" and row["recompiles"] == 0 and row["median_ms"] > 0
    assert doc["environment"]["host_defaults"]["malloc"] in (True, False)
    assert "MFU" in proc.stdout and doc["ceilings"]["matmul_flops"]["float32"] > 0
