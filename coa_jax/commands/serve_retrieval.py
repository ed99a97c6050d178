"""`python -m coa_jax serve-retrieval --corpus FILE`: the FlashRAG-compatible BM25 retrieval server.

Builds (or loads from its cache) a BM25 index of the corpus and serves `POST /retrieve` and
`GET /health` until interrupted. Binds to 127.0.0.1 unless `--host` says otherwise.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", required=True, help="corpus.jsonl: one {id, title, contents} object a line")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=8080, help="port (0: any free port; default 8080)")
    parser.add_argument("--topk", type=int, default=3, help="documents per query when a request gives none")
    parser.add_argument("--cache-dir", default=None,
                        help="index cache directory (default: .bm25_index/ beside the corpus)")
    parser.add_argument("--max-batch", type=int, default=512, help="most queries in one request")
    parser.add_argument("--max-topk", type=int, default=100, help="largest topk a request may ask")
    parser.add_argument("--max-query-chars", type=int, default=4096, help="longest query accepted")
    parser.add_argument("--max-body-bytes", type=int, default=1 << 20, help="largest request body accepted")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="artificial fixed delay per request")
    parser.add_argument("--latency-median-ms", type=float, default=0.0,
                        help="artificial lognormal delay per request with this median (0: none)")
    parser.add_argument("--latency-sigma", type=float, default=0.5, help="log-space sigma of the lognormal delay")


def run(args: argparse.Namespace) -> int:
    from coa_jax.env.bm25 import BM25Retriever
    from coa_jax.env.server import Latency, ServerLimits, serve_forever

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    start = time.perf_counter()
    try:
        retriever = BM25Retriever(args.corpus, cache_dir=args.cache_dir)
    except (OSError, ValueError, ImportError) as e:
        print(f"serve-retrieval: {e}", file=sys.stderr)
        return 2
    how = "loaded" if retriever.loaded_from_cache else "built"
    print(f"{how} BM25 index of {retriever.num_docs} documents in {time.perf_counter() - start:.1f}s "
          f"({retriever.index_dir})", flush=True)
    limits = ServerLimits(max_body_bytes=args.max_body_bytes, max_batch=args.max_batch, max_topk=args.max_topk,
                          max_query_chars=args.max_query_chars)
    latency = Latency(fixed_ms=args.latency_ms, median_ms=args.latency_median_ms, sigma=args.latency_sigma)
    serve_forever(retriever, host=args.host, port=args.port, default_topk=args.topk, limits=limits, latency=latency,
                  on_ready=lambda url: print(f"serving {url}/retrieve (POST) and {url}/health", flush=True))
    return 0
