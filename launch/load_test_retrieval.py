"""Load test of the retrieval server: many concurrent clients, some sending bad requests (loopback only).

    python launch/load_test_retrieval.py --synthetic 5000 --clients 64 --requests 50
    python launch/load_test_retrieval.py --url http://127.0.0.1:8080 --clients 32 --requests 100 --json

Each client is its own connection sending `--requests` requests one after another; a fraction
`--bad-fraction` of them are deliberately malformed (broken JSON, wrong types, too many queries,
an oversized query), which the server must answer 4xx. Prints throughput (requests/s and
queries/s of good requests), latency percentiles and the outcomes; exits 1 if any good request
failed, any bad request was not refused with 4xx, or the server is unhealthy afterwards. Only
loopback addresses are accepted, and clients, requests and the run time are bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import ipaddress
import json
import math
import os
import random
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench_retrieval's synthetic corpus

import aiohttp  # noqa: E402

MAX_CLIENTS = 256
MAX_TOTAL_REQUESTS = 200_000
BAD_KINDS = ("broken_json", "wrong_type", "too_many_queries", "oversized_query")


def is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def request_plan(clients: int, requests: int, bad_fraction: float, queries: list[str], batch: int, seed: int):
    """Per client, the list of (kind, body bytes, number of queries) it sends; kind "good" or a BAD_KIND."""
    rng = random.Random(seed)
    plans = []
    for _ in range(clients):
        plan = []
        for _ in range(requests):
            if rng.random() < bad_fraction:
                kind = rng.choice(BAD_KINDS)
                body = {"broken_json": b'{"query": ["unterminated',
                        "wrong_type": json.dumps({"query": [1, 2]}).encode(),
                        "too_many_queries": json.dumps({"query": ["q"] * 1000}).encode(),
                        "oversized_query": json.dumps({"query": "x" * 100_000}).encode()}[kind]
                plan.append((kind, body, 0))
            else:
                chosen = [rng.choice(queries) for _ in range(batch)]
                plan.append(("good", json.dumps({"query": chosen, "topk": 3, "return_score": True}).encode(), batch))
        plans.append(plan)
    return plans


async def run_client(url: str, plan, timeout_s: float, deadline: float, record) -> None:
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        for kind, body, n_queries in plan:
            if time.perf_counter() > deadline:
                record(kind, "not_sent", 0.0, 0)
                continue
            start = time.perf_counter()
            try:
                async with session.post(url + "/retrieve", data=body, timeout=timeout, allow_redirects=False,
                                        headers={"Content-Type": "application/json"}) as resp:
                    status, payload = resp.status, await resp.read()
            except TimeoutError:
                record(kind, "timeout", time.perf_counter() - start, 0)
                continue
            except (aiohttp.ClientError, OSError) as e:
                record(kind, f"connection:{type(e).__name__}", time.perf_counter() - start, 0)
                continue
            elapsed = time.perf_counter() - start
            if kind != "good":
                record(kind, "refused_4xx" if 400 <= status < 500 else f"http_{status}", elapsed, 0)
                continue
            outcome = f"http_{status}"
            if status == 200:
                try:
                    rows = json.loads(payload)
                    ok = isinstance(rows, list) and len(rows) == n_queries and all("documents" in r for r in rows)
                except ValueError:
                    ok = False
                outcome = "ok" if ok else "bad_answer"
            record(kind, outcome, elapsed, n_queries if outcome == "ok" else 0)


async def load(url: str, plans, timeout_s: float, max_seconds: float) -> dict:
    outcomes = collections.Counter()
    latencies: list[float] = []
    good_queries = 0

    def record(kind, outcome, elapsed, n_queries):
        nonlocal good_queries
        outcomes[f"{kind}:{outcome}"] += 1
        if outcome != "not_sent":
            latencies.append(elapsed * 1000.0)
        good_queries += n_queries

    start = time.perf_counter()
    await asyncio.gather(*(run_client(url, plan, timeout_s, start + max_seconds, record) for plan in plans))
    wall = time.perf_counter() - start
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(url + "/health", timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
                healthy = resp.status == 200 and (await resp.json()).get("status") == "ok"
        except (aiohttp.ClientError, OSError, TimeoutError):
            healthy = False
    latencies.sort()
    sent = len(latencies)
    pct = lambda p: latencies[max(0, math.ceil(p / 100 * sent) - 1)] if sent else math.nan  # noqa: E731
    good_ok = outcomes["good:ok"]
    unexpected = {k: v for k, v in outcomes.items()
                  if not (k == "good:ok" or (not k.startswith("good:") and k.endswith(":refused_4xx")))}
    return {"clients": len(plans), "requests_sent": sent, "wall_s": round(wall, 3),
            "requests_per_s": round(sent / wall, 1) if wall else 0.0,
            "good_queries_per_s": round(good_queries / wall, 1) if wall else 0.0,
            "latency_ms_p50": round(pct(50), 2), "latency_ms_p90": round(pct(90), 2),
            "latency_ms_p99": round(pct(99), 2), "good_ok": good_ok,
            "bad_refused": sum(v for k, v in outcomes.items()
                               if k.endswith(":refused_4xx") and not k.startswith("good")),
            "outcomes": dict(sorted(outcomes.items())), "unexpected": unexpected, "healthy_after": healthy}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--url", help="a running server on loopback, e.g. http://127.0.0.1:8080")
    source.add_argument("--corpus", help="serve this corpus.jsonl in-process for the test")
    source.add_argument("--synthetic", type=int, metavar="N", help="serve a generated N-passage corpus in-process")
    parser.add_argument("--clients", type=int, default=32, help=f"concurrent connections (at most {MAX_CLIENTS})")
    parser.add_argument("--requests", type=int, default=50, help="requests per client")
    parser.add_argument("--batch", type=int, default=4, help="queries per good request")
    parser.add_argument("--bad-fraction", type=float, default=0.1, help="share of deliberately malformed requests")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request time limit (s)")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="stop sending after this long")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    args = parser.parse_args(argv)
    problems = []
    if not 1 <= args.clients <= MAX_CLIENTS:
        problems.append(f"--clients must be in [1, {MAX_CLIENTS}]")
    if args.requests < 1 or args.clients * args.requests > MAX_TOTAL_REQUESTS:
        problems.append(f"--requests must be >= 1 with clients x requests <= {MAX_TOTAL_REQUESTS}")
    if not 0 <= args.bad_fraction <= 1 or args.batch < 1 or args.timeout <= 0 or args.max_seconds <= 0:
        problems.append("--bad-fraction must be in [0, 1]; --batch, --timeout, --max-seconds must be > 0")
    if args.url and not is_loopback(args.url):
        problems.append(f"--url must be a loopback address (127.0.0.0/8, ::1, localhost), got {args.url!r}")
    if problems:
        print("error: " + "; ".join(problems), file=sys.stderr)
        return 2

    from coa_jax.env.bm25 import BM25Retriever
    from coa_jax.env.server import serve_in_thread

    with tempfile.TemporaryDirectory() as tmp:
        if args.url:
            queries = ["capital of the country", "who wrote the novel", "river city bridge", "year of the battle"]
            report = asyncio.run(_run(args, args.url.rstrip("/"), queries))
        else:
            corpus = args.corpus
            if corpus is None:
                from bench_retrieval import write_synthetic_corpus

                corpus = os.path.join(tmp, "synthetic_corpus.jsonl")
                write_synthetic_corpus(corpus, args.synthetic)
            retriever = BM25Retriever(corpus, cache_dir=os.path.join(tmp, "index") if args.synthetic else None)
            rng = random.Random(args.seed)
            queries = [" ".join(rng.sample(d.contents.split(), min(4, len(d.contents.split()))))
                       for d in rng.sample(retriever.docs, min(200, retriever.num_docs))]
            with serve_in_thread(retriever) as url:
                report = asyncio.run(_run(args, url, queries))
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{report['clients']} clients, {report['requests_sent']} requests in {report['wall_s']:.2f}s: "
              f"{report['requests_per_s']:.0f} requests/s, {report['good_queries_per_s']:.0f} good queries/s; "
              f"latency ms p50/p90/p99 {report['latency_ms_p50']}/{report['latency_ms_p90']}/"
              f"{report['latency_ms_p99']}")
        print(f"good answered: {report['good_ok']}; bad refused with 4xx: {report['bad_refused']}; "
              f"unexpected: {report['unexpected'] or 'none'}; healthy after: {report['healthy_after']}")
    return 0 if not report["unexpected"] and report["healthy_after"] else 1


async def _run(args, url: str, queries: list[str]) -> dict:
    plans = request_plan(args.clients, args.requests, args.bad_fraction, queries, args.batch, args.seed)
    return await load(url, plans, args.timeout, args.max_seconds)


if __name__ == "__main__":
    raise SystemExit(main())
