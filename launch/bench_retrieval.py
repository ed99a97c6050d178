"""Retrieval throughput: in-process BM25 vs the HTTP server through the client.

    python launch/bench_retrieval.py --synthetic 20000 --queries 2000
    python launch/bench_retrieval.py --corpus path/to/corpus.jsonl --queries 1000 --latency-ms 5

Prints queries/second for in-process BM25 (batched, one query at a time) and for the loopback
server queried through `RetrievalClient` (batched requests, one query a request), plus the
client's request latency percentiles. The client cache is off, so every query reaches the server.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from coa_jax.env.bm25 import BM25Retriever  # noqa: E402
from coa_jax.env.client import RetrievalClient  # noqa: E402
from coa_jax.env.server import Latency, ServerLimits, serve_in_thread  # noqa: E402


def write_synthetic_corpus(path: str, n_docs: int, seed: int = 0) -> None:
    """An n-passage corpus of Zipf-distributed pseudo-words, FlashRAG style ("Title"\\ntext)."""
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mi", "ren", "tu", "sa", "vel", "or", "din", "pa", "qui", "zem", "bo", "tar", "ni"]
    vocab = sorted({"".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) for _ in range(20000)})
    weights = [1.0 / (rank + 1) for rank in range(len(vocab))]
    with open(path, "w") as f:
        for i in range(n_docs):
            title = " ".join(rng.choice(vocab[:2000]).capitalize() for _ in range(2))
            text = " ".join(rng.choices(vocab, weights, k=rng.randint(40, 100)))
            f.write(json.dumps({"id": str(i), "title": title, "contents": f'"{title}"\n{title} {text}.'}) + "\n")


def make_queries(retriever: BM25Retriever, n: int, seed: int = 1) -> list[str]:
    """Queries of 3-8 words drawn from random passages (title words included)."""
    rng = random.Random(seed)
    queries = []
    for _ in range(n):
        words = rng.choice(retriever.docs).contents.replace('"', "").split()
        queries.append(" ".join(rng.sample(words, min(len(words), rng.randint(3, 8)))))
    return queries


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--corpus", help="corpus.jsonl to index")
    source.add_argument("--synthetic", type=int, metavar="N", help="generate an N-passage corpus")
    parser.add_argument("--queries", type=int, default=1000, help="queries per measurement")
    parser.add_argument("--topk", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64, help="queries per request / per in-process batch")
    parser.add_argument("--concurrency", type=int, default=8, help="client requests in flight")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="artificial server delay per request")
    parser.add_argument("--cache-dir", default=None, help="BM25 index cache (default: beside the corpus)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        corpus = args.corpus
        if corpus is None:
            corpus = os.path.join(tmp, "synthetic_corpus.jsonl")
            write_synthetic_corpus(corpus, args.synthetic)
        start = time.perf_counter()
        retriever = BM25Retriever(corpus, cache_dir=args.cache_dir or os.path.join(tmp, "index"))
        build_s = time.perf_counter() - start
        queries = make_queries(retriever, args.queries)
        n, k, bs = len(queries), args.topk, args.batch_size
        print(f"corpus: {retriever.num_docs} passages ({corpus}); index built in {build_s:.2f}s; "
              f"{n} queries, top-{k}, batch {bs}, concurrency {args.concurrency}, "
              f"server latency {args.latency_ms:g} ms")

        rows = []
        t = timed(lambda: [retriever.search(queries[i:i + bs], k) for i in range(0, n, bs)])
        rows.append(("in-process BM25, batched", n / t, "", ""))
        t = timed(lambda: [retriever.search([q], k) for q in queries])
        rows.append(("in-process BM25, one query a call", n / t, "", ""))

        limits = ServerLimits(max_batch=max(512, bs))
        latency = Latency(fixed_ms=args.latency_ms)
        with serve_in_thread(retriever, default_topk=k, limits=limits, latency=latency) as url:
            for label, batch in (("HTTP via client, batched", bs), ("HTTP via client, one query a request", 1)):
                with RetrievalClient(url, batch_size=batch, max_concurrency=args.concurrency, cache_size=0) as client:
                    client.search(queries[:batch], k)  # warm the connection pool
                    warm = client.stats()["requests"]
                    t = timed(lambda: client.search(queries, k))
                    stats = client.stats()
                    assert stats["failures"] == 0, stats
                    rows.append((label, n / t, f"{stats['latency_ms_p50']:.1f}/{stats['latency_ms_p99']:.1f}",
                                 f"{int(stats['requests'] - warm)}"))

    print(f"\n{'path':<40} {'queries/s':>12} {'req ms p50/p99':>16} {'requests':>9}")
    for label, qps, lat, reqs in rows:
        print(f"{label:<40} {qps:>12.0f} {lat:>16} {reqs:>9}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
