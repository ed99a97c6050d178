"""The client against deliberately bad servers: failures stay per query, counts are reported."""

import asyncio
import socket

import pytest
from aiohttp import web

from coa_jax.env.client import RetrievalClient
from coa_jax.env.search_tool import SearchTool
from coa_jax.env.server import serve_app_in_thread

FAILED = "\n\n<search_result> Retrieval failed. </search_result>\n\n"


def good_answer(queries, topk):
    return [{"documents": [{"id": f"{q}-{i}", "contents": f"doc {i} for {q}"} for i in range(topk)],
             "scores": [1.0 / (i + 1) for i in range(topk)]} for q in queries]


def fault_app(fault, trigger="bad"):
    """A server that answers well unless a query in the batch contains `trigger` (or always, for "*")."""
    release = asyncio.Event()

    async def retrieve(request):
        body = await request.json()
        queries, topk = body["query"], body.get("topk", 3)
        if trigger == "*" or any(trigger in q for q in queries):
            if fault == "500":
                return web.json_response({"error": "boom"}, status=500)
            if fault == "400":
                return web.json_response({"error": "bad"}, status=400)
            if fault == "slow":
                try:
                    await asyncio.wait_for(release.wait(), timeout=5)
                except asyncio.TimeoutError:
                    pass
            if fault == "malformed":
                return web.Response(text='[{"documents": [', content_type="application/json")
            if fault == "short":
                return web.json_response(good_answer(queries, topk)[:-1])
            if fault == "no_contents":
                return web.json_response([{"documents": [{"id": "1"}]} for _ in queries])
            if fault == "redirect":
                raise web.HTTPFound("http://127.0.0.1:9/elsewhere")
        return web.json_response(good_answer(queries, topk))

    app = web.Application()
    app.router.add_post("/retrieve", retrieve)

    async def on_shutdown(_):
        release.set()

    app.on_shutdown.append(on_shutdown)
    return app


def tool_for(url, **config):
    config = {"retries": 1, "backoff_s": 0.001, "timeout_s": 5.0, **config}
    return SearchTool(RetrievalClient(url, **config), topk=2)


QUERIES = ["alpha", "bad one", "beta", "gamma", "also bad", "delta"]
BAD = {1, 4}


@pytest.mark.parametrize("fault", ["500", "400", "malformed", "short", "no_contents", "redirect"])
def test_failed_queries_fail_alone_and_are_counted(fault):
    with serve_app_in_thread(fault_app(fault)) as url:
        tool = tool_for(url, batch_size=4)
        try:
            results = tool.call(QUERIES)
            stats = tool.stats()
        finally:
            tool.close()
    for i, (q, r) in enumerate(zip(QUERIES, results)):
        if i in BAD:
            assert (r.ok, r.text) == (False, FAILED) and r.error
        else:
            body = f"result 1: doc 0 for {q}\nresult 2: doc 1 for {q}"
            assert r.ok and r.text == f"\n\n<search_result> {body} </search_result>\n\n"
    assert stats["calls"] == 6 and stats["failures"] == 2 and stats["split_batches"] >= 2
    retryable = fault in ("500", "malformed", "short", "no_contents")
    assert (stats["retries"] > 0) == retryable


def test_refused_connection_fails_every_query():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    tool = tool_for(f"http://127.0.0.1:{port}", batch_size=2, retries=2)
    try:
        results = tool.call(["a", "b", "c"])
        stats = tool.stats()
    finally:
        tool.close()
    assert [r.text for r in results] == [FAILED] * 3 and not any(r.ok for r in results)
    assert "Connect" in results[0].error or "connect" in results[0].error
    # 2 batches x 3 attempts, no splitting: the server never answered
    assert (stats["requests"], stats["retries"], stats["failures"], stats["split_batches"]) == (6, 4, 3, 0)


def test_answer_after_the_timeout_fails_only_that_query():
    with serve_app_in_thread(fault_app("slow", trigger="slow")) as url:
        tool = tool_for(url, batch_size=1, timeout_s=0.5, retries=1)
        try:
            results = tool.call(["fast", "slow one", "quick"])
            stats = tool.stats()
        finally:
            tool.close()
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].text == FAILED and "no answer within 0.5s" in results[1].error
    assert (stats["failures"], stats["retries"], stats["requests"], stats["split_batches"]) == (1, 1, 4, 0)


def test_failures_are_not_cached_and_duplicates_are_sent_once():
    with serve_app_in_thread(fault_app("500", trigger="*")) as url:
        tool = tool_for(url, retries=0, batch_size=8)
        try:
            assert [r.ok for r in tool.call(["x", "x"])] == [False, False]
            assert [r.ok for r in tool.call(["x"])] == [False]
            stats = tool.stats()
        finally:
            tool.close()
    assert (stats["requests"], stats["cache_hits"], stats["failures"]) == (2, 0, 3)


def test_concurrency_cap_limits_requests_in_flight():
    in_flight, peak = 0, 0
    full = asyncio.Event()

    async def retrieve(request):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight >= 3:
            full.set()
        try:  # hold each request open until three are in flight at once
            await asyncio.wait_for(full.wait(), timeout=2)
        except asyncio.TimeoutError:
            pass
        await asyncio.sleep(0.005)
        in_flight -= 1
        body = await request.json()
        return web.json_response(good_answer(body["query"], body["topk"]))

    app = web.Application()
    app.router.add_post("/retrieve", retrieve)
    with serve_app_in_thread(app) as url:
        with RetrievalClient(url, batch_size=1, max_concurrency=3) as client:
            out = client.search([f"q{i}" for i in range(12)], 1)
    assert all(isinstance(o, list) for o in out) and peak == 3
