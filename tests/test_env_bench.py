"""`launch/bench_retrieval.py` runs end to end on a small synthetic corpus."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_prints_a_throughput_table(tmp_path):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "launch", "bench_retrieval.py"), "--synthetic", "300",
                          "--queries", "40", "--batch-size", "8", "--concurrency", "2"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("corpus: 300 passages")
    table = lines[lines.index(next(l for l in lines if l.startswith("path"))):]
    assert "queries/s" in table[0]
    labels = [l[:40].strip() for l in table[1:]]
    assert labels == ["in-process BM25, batched", "in-process BM25, one query a call", "HTTP via client, batched",
                      "HTTP via client, one query a request"]
    assert all(float(l[40:53]) > 0 for l in table[1:])
