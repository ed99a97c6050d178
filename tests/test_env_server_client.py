"""The retrieval server on loopback, queried through the client, equals in-process BM25."""

import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from coa_jax.env.bm25 import BM25Retriever
from coa_jax.env.client import ClientConfig, RetrievalClient, http_search_tool
from coa_jax.env.search_tool import SearchTool
from coa_jax.env.server import Latency, ServerLimits, serve_in_thread

WORDS = "river city capital museum king queen battle bridge mountain lake opera novel painter treaty".split()


@pytest.fixture(scope="module")
def retriever(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    with open(path, "w") as f:
        for i in range(60):
            title = f"Entity {i}"
            text = " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(12))
            row = {"id": str(i), "title": title, "contents": f'"{title}"\n{title} {text} number{i}.'}
            f.write(json.dumps(row) + "\n")
    return BM25Retriever(path)


@pytest.fixture(scope="module")
def server(retriever):
    limits = ServerLimits(max_batch=16, max_topk=10, max_query_chars=200, max_body_bytes=4096)
    with serve_in_thread(retriever, default_topk=3, limits=limits) as url:
        yield url


def post(url, body, raw=False):
    data = body if raw else json.dumps(body).encode()
    req = urllib.request.Request(url + "/retrieve", data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


QUERIES = ["river city number3", "opera painter", "king queen battle number17", "treaty bridge", "lake"]


def test_client_results_equal_in_process(server, retriever):
    expected = retriever.search(QUERIES, 3)
    with RetrievalClient(server, batch_size=2) as client:
        got = client.search(QUERIES, 3)
        assert [[h.doc for h in row] for row in got] == [[h.doc for h in row] for row in expected]
        for row_got, row_exp in zip(got, expected):
            assert [h.score for h in row_got] == pytest.approx([h.score for h in row_exp], rel=1e-6)
        assert client.stats()["requests"] == 3  # 5 queries in batches of 2
        again = client.search(QUERIES[:2] + ["lake"], 3)  # all cached
        assert again == got[:2] + [got[4]]
        stats = client.stats()
        assert (stats["calls"], stats["cache_hits"], stats["requests"], stats["failures"]) == (8, 3, 3, 0)
        assert 0 < stats["latency_ms_p50"] <= stats["latency_ms_p90"] <= stats["latency_ms_p99"]
        assert client.health() == {"status": "ok", "num_docs": 60, "default_topk": 3}


def test_search_tool_over_http_matches_bm25_tool(server, retriever):
    local = SearchTool(retriever, topk=3)
    remote = http_search_tool(server, topk=3, batch_size=4)
    try:
        assert [r.text for r in remote.call(QUERIES)] == [r.text for r in local.call(QUERIES)]

        async def from_a_loop():  # both entry points, from inside a running loop
            return await remote.acall(QUERIES[:2]), remote.call(QUERIES[2:])

        first, rest = asyncio.run(from_a_loop())
        assert [r.text for r in first + rest] == [r.text for r in local.call(QUERIES)]
        assert all(r.ok for r in first + rest)
    finally:
        remote.close()


def test_both_protocol_dialects(server, retriever):
    status, single = post(server, {"query": "opera painter", "tok_k": 2})  # the reference client's request
    assert status == 200 and set(single) == {"documents", "scores"} and len(single["documents"]) == 2
    assert set(single["documents"][0]) == {"id", "title", "contents"}
    status, batch = post(server, {"query": ["opera", "lake"], "topk": 1, "return_score": False})
    assert status == 200 and [set(item) for item in batch] == [{"documents"}, {"documents"}]
    status, r1 = post(server, {"queries": ["opera painter", "lake"], "topk": 2, "return_scores": True})
    assert status == 200 and len(r1["result"]) == 2 and set(r1["result"][0][0]) == {"document", "score"}
    assert r1["result"][0][0]["document"] == single["documents"][0]
    assert r1["result"][0][0]["score"] == pytest.approx(single["scores"][0])
    status, bare = post(server, {"queries": ["lake"]})
    assert status == 200 and set(bare["result"][0][0]) == {"id", "title", "contents"}
    # what the client parses from each dialect is the same
    from coa_jax.env.client import parse_response

    assert [h.doc for h in parse_response(r1, 2)[0]] == [h.doc for h in parse_response([single], 1)[0]]
    assert math.isnan(parse_response(bare, 1)[0][0].score)


@pytest.mark.parametrize("body, status, message", [
    (b"{not json", 400, "malformed JSON"),
    (b"[1, 2]", 400, "JSON object"),
    (json.dumps({"topk": 3}).encode(), 400, "exactly one of"),
    (json.dumps({"query": "a", "queries": ["a"]}).encode(), 400, "exactly one of"),
    (json.dumps({"query": [1, 2]}).encode(), 400, "list of strings"),
    (json.dumps({"query": []}).encode(), 400, "is empty"),
    (json.dumps({"query": ["q"] * 17}).encode(), 413, "limit is 16"),
    (json.dumps({"query": "q" * 201}).encode(), 413, "201 characters"),
    (json.dumps({"query": "q", "topk": 11}).encode(), 400, "over the limit 10"),
    (json.dumps({"query": "q", "topk": 0}).encode(), 400, "positive integer"),
    (json.dumps({"query": "q", "topk": 2, "tok_k": 3}).encode(), 400, "conflicting"),
    (json.dumps({"query": "q", "return_score": "yes"}).encode(), 400, "true or false"),
    (json.dumps({"query": "q" * 5000}).encode(), 413, "body size"),
])
def test_bad_requests_get_4xx_with_json_error(server, body, status, message):
    got_status, got = post(server, body, raw=True)
    assert got_status == status and message in got["error"]


def test_unknown_path_and_method_answer_json(server):
    for req in (urllib.request.Request(server + "/nope"), urllib.request.Request(server + "/retrieve")):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        assert e.value.code in (404, 405) and "error" in json.loads(e.value.read())


def test_artificial_latency(retriever):
    draw = Latency(fixed_ms=5, median_ms=20, sigma=0.3, seed=1).sampler()
    delays = sorted(draw() for _ in range(501))
    assert all(d > 0.005 for d in delays) and 0.02 < delays[250] < 0.03  # median ~ 5 + 20 ms
    with serve_in_thread(retriever, latency=Latency(fixed_ms=30)) as url:
        with RetrievalClient(url) as client:
            client.search(["lake"], 1)
            assert client.stats()["latency_ms_p50"] >= 30


def test_client_config_is_validated():
    for bad in ("ftp://x", "http://", "localhost:8080", "http://h/?q=1"):
        with pytest.raises(ValueError, match="base_url"):
            ClientConfig(base_url=bad)
    with pytest.raises(ValueError, match="batch_size"):
        ClientConfig(base_url="http://127.0.0.1:1", batch_size=0)
    assert ClientConfig(base_url="http://127.0.0.1:1/api/").retrieve_url == "http://127.0.0.1:1/api/retrieve"


def test_serve_retrieval_command(retriever):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "coa_jax", "serve-retrieval", "--corpus", retriever.corpus_path,
                             "--port", "0", "--topk", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("serving "):
                break
        assert lines and lines[0].startswith("loaded BM25 index of 60 documents"), lines
        url = lines[-1].split()[1].rsplit("/retrieve", 1)[0]
        assert url.startswith("http://127.0.0.1:")
        status, answer = post(url, {"query": "opera painter"})
        assert status == 200 and len(answer["documents"]) == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        proc.stdout.close()
