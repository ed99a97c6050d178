"""Tool faults during agent rollouts, bad model outputs, and a load test of the retrieval server.

The policy is a scripted decoder (coa_jax.rollout.scripted) that surely searches; its search tool
talks HTTP to a server the test breaks on purpose: it dies mid-rollout and comes back on the same
port, answers 500, garbage, a body too large, too slowly, or never. Every rollout finishes within
the configured timeouts; each failed call is marked in the trajectory (ToolCall.ok False, the
failure observation in the text) and counted in the GRPO step metrics and the client's stats.
"""

import asyncio
import collections
import importlib.util
import json
import os
import pathlib
import socket
import time

import numpy as np
import pytest
import transformers
from aiohttp import web

from coa_jax.data.world.build import build_world
from coa_jax.env.background_loop import BackgroundLoop
from coa_jax.env.bm25 import BM25Retriever
from coa_jax.env.client import RetrievalClient
from coa_jax.env.registry import ToolRegistry, build_tool
from coa_jax.env.search_tool import SearchTool
from coa_jax.env.server import serve_in_thread
from coa_jax.models.model_config import ModelConfig
from coa_jax.rollout.config import RolloutConfig
from coa_jax.rollout.engine import RolloutEngine
from coa_jax.rollout.scripted import AgentScript, Grammar, agent_grammar, scripted_params
from coa_jax.train.grpo import trajectory_metrics, trajectory_totals
from model_fixtures import single_device_sharder

ROOT = pathlib.Path(__file__).resolve().parents[1]
CFG = ModelConfig(vocab_size=1040, hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4, num_kv_heads=2,
                  max_position_embeddings=512, init_std=0.1)
ROLLOUT = RolloutConfig(batch_slots=4, max_prompt_tokens=32, max_response_tokens=128, max_actions=2,
                        answer_reserve=24, temperature=0.0, segment_steps=16, tool_timeout_s=1.5)
FAILED = "Retrieval failed."


class FlakyServer:
    """A FlashRAG-style /retrieve on loopback whose behaviour the test sets with `mode`.

    ok: documents echoing the query; die: the server goes down (the request in flight is cut)
    and comes back on the same port `down_s` later; 500; garbage (random bytes); huge (a valid
    answer padded to 2 MiB); slow (answers after 2 s); hang (never answers).
    """

    def __init__(self, down_s: float = 0.5):
        self.mode, self.down_s, self.port, self.runner = "ok", down_s, 0, None
        self.requests = collections.Counter()
        self.loop = BackgroundLoop("flaky-retrieval-server")
        self.up = asyncio.Event()
        self.url = self.loop.run(self._start())

    async def _start(self) -> str:
        app = web.Application()
        app.router.add_post("/retrieve", self._retrieve)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.05)
        await self.runner.setup()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        await web.SockSite(self.runner, sock).start()
        self.port = sock.getsockname()[1]
        self.up.set()
        return f"http://127.0.0.1:{self.port}"

    async def _down_then_up(self):
        self.up.clear()
        await self.runner.cleanup()  # closes the listener and cuts open connections
        await asyncio.sleep(self.down_s)
        await self._start()

    async def _retrieve(self, request):
        mode = self.mode
        self.requests[mode] += 1
        queries = (await request.json())["query"]
        if mode == "die":
            self.mode = "ok"  # after the restart
            asyncio.get_running_loop().create_task(self._down_then_up())
            await asyncio.sleep(30)  # cancelled by the shutdown
        if mode == "500":
            return web.json_response({"error": "boom"}, status=500)
        if mode == "garbage":
            return web.Response(body=os.urandom(300), content_type="application/json")
        if mode in ("slow", "hang"):
            await asyncio.sleep(2.0 if mode == "slow" else 60.0)
        answer = json.dumps([{"documents": [{"id": "1", "contents": f'"Doc"\nabout {q}'}], "scores": [1.0]}
                             for q in queries])
        if mode == "huge":  # a valid answer, padded past the client's max_response_bytes (1 MiB)
            answer += " " * (2 << 20)
        return web.Response(text=answer, content_type="application/json")

    def wait_up(self):
        self.loop.run(asyncio.wait_for(self.up.wait(), timeout=10))

    def close(self):
        self.loop.run(self.runner.cleanup())
        self.loop.close()


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    build_world(root, seed=0, size="tiny")
    tok = transformers.AutoTokenizer.from_pretrained(str(root / "tokenizer"))
    enc = lambda text: tok.encode(text, add_special_tokens=False)  # noqa: E731
    [and_], [calc_open], [of], [is_] = enc(" and"), enc("<begin_calc>"), enc(" of"), enc(" is")
    grammar = agent_grammar(tok, AgentScript(p_search=0.6, p_answer=0.3), eos_id=tok.eos_token_id)
    transitions = dict(grammar.transitions)  # and a prompt ending in " and" opens a call it never closes
    transitions.update({and_: {calc_open: 1.0}, calc_open: {of: 1.0}, of: {is_: 1.0}, is_: {of: 1.0}})
    sharder = single_device_sharder("sampling")
    params = scripted_params(CFG, Grammar(transitions), sharder)
    server = FlakyServer()
    registry = _registry(server.url)
    engine = RolloutEngine(CFG, sharder, ROLLOUT, tok, eos_ids=[tok.eos_token_id], registry=registry)
    head = enc("<|im_start|>user\nWhere?<|im_end|>\n<|im_start|>assistant\n<think>")
    yield dict(tok=tok, engine=engine, params=params, server=server, registry=registry, corpus=root / "corpus.jsonl",
               prompts={"search": head + enc("\n"), "unclosed": head + [and_]})
    registry.close()
    server.close()


def _registry(url, **client):
    client = {"timeout_s": 0.5, "retries": 1, "backoff_s": 0.01, "cache_size": 0, "max_response_bytes": 1 << 20,
              **client}
    return ToolRegistry([SearchTool(RetrievalClient(url, **client), topk=1), build_tool("calc", "calculator")])


def _rollout(agent, registry=None, n=4):
    engine = agent["engine"]
    saved, engine.registry = engine.registry, registry or agent["registry"]
    try:
        start = time.perf_counter()
        result = engine.rollout(agent["params"], [agent["prompts"]["search"]] * n)
        return result, time.perf_counter() - start
    finally:
        engine.registry = saved


def _check_visible_and_counted(result):
    """Each failed call is marked and its failure observation follows it; metrics count them all."""
    trajs = result.trajectories
    calls = [c for t in trajs for c in t.tool_calls if not c.limited]
    for t in trajs:
        assert t.finish in ("answered", "length")
        assert t.response_text.count(FAILED) == sum(not c.ok for c in t.tool_calls if not c.limited)
    metrics = trajectory_metrics(trajectory_totals(trajs, np.zeros(len(trajs), np.float32), np.zeros(1, bool),
                                                  result.stats), "real")
    failed = sum(not c.ok for c in calls)
    assert metrics["real_tool_calls"] == len(calls) > 0 and metrics["tool_failures"] == failed
    return len(calls), failed


def test_rollout_survives_a_server_that_dies_and_comes_back(agent):
    server, tool = agent["server"], agent["registry"]["search"]
    calls, failed = _check_visible_and_counted(_rollout(agent)[0])
    assert failed == 0  # healthy baseline
    before = tool.stats()["failures"]
    server.mode = "die"
    calls, failed = _check_visible_and_counted(_rollout(agent)[0])
    assert failed >= 1 and server.requests["die"] == 1
    assert tool.stats()["failures"] - before == failed  # the client counted the same failures
    server.wait_up()  # restarted on the same port: the same client reconnects
    assert _check_visible_and_counted(_rollout(agent)[0])[1] == 0


@pytest.mark.parametrize("mode", ["500", "garbage", "huge", "slow"])
def test_every_call_to_a_broken_server_fails_alone_and_is_counted(agent, mode):
    server = agent["server"]
    server.mode = mode
    try:
        result, wall = _rollout(agent)
    finally:
        server.mode = "ok"
    calls, failed = _check_visible_and_counted(result)
    assert failed == calls  # and the rollout finished
    # two rounds of calls, each at most 2 attempts x 0.5 s client timeout (+ decoding)
    assert wall < 2 * 2 * 0.5 + 4.0


def test_a_tool_that_never_answers_is_cut_by_the_rollout_timeout(agent):
    """The client would wait 60 s; the host fails the batch after tool_timeout_s=1.5 s."""
    server = agent["server"]
    patient = _registry(server.url, timeout_s=60.0, retries=0)
    server.mode = "hang"
    try:
        result, wall = _rollout(agent, patient)
    finally:
        server.mode = "ok"
        patient.close()
    calls, failed = _check_visible_and_counted(result)
    assert failed == calls and wall < 2 * ROLLOUT.tool_timeout_s + 4.0


def test_an_action_tag_that_is_never_closed_ends_at_the_token_budget(agent):
    engine = agent["engine"]
    traj = engine.rollout(agent["params"], [agent["prompts"]["unclosed"]]).trajectories[0]
    assert traj.tool_calls == () and traj.forced == "tokens" and traj.finish == "answered"
    assert len(traj.response_ids) <= ROLLOUT.max_response_tokens
    [open_call] = engine.registry.parser.find_actions(traj.response_text, include_unclosed=True)
    assert open_call.tool == "calc" and not open_call.closed


def test_prompts_longer_than_the_context_are_refused_before_decoding(agent):
    engine = agent["engine"]
    with pytest.raises(ValueError, match=r"prompt 1 has 33 tokens; 1\.\.32 allowed"):
        engine.rollout(agent["params"], [[1, 2], list(range(33))])
    with pytest.raises(ValueError, match="prompt 0 has 0 tokens"):
        engine.rollout(agent["params"], [[]])


def test_a_megabyte_query_is_cut_to_the_server_limit_and_answered(agent):
    retriever = BM25Retriever(agent["corpus"])
    with serve_in_thread(retriever) as url:
        tool = SearchTool(RetrievalClient(url, retries=0), topk=2)
        try:
            start = time.perf_counter()
            [result] = tool.call(["capital city " * 200_000])  # 2.6 MB; the server refuses > 4096 chars
            assert result.ok and "result 1:" in result.text and time.perf_counter() - start < 10
            assert tool.stats()["truncated_queries"] == 1.0
        finally:
            tool.close()


def test_load_test_many_clients_with_bad_requests(capsys):
    spec = importlib.util.spec_from_file_location("load_test_retrieval", ROOT / "launch" / "load_test_retrieval.py")
    load_test = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(load_test)
    assert load_test.main(["--synthetic", "300", "--clients", "32", "--requests", "8", "--bad-fraction", "0.25",
                           "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["requests_sent"] == 256 and report["good_ok"] + report["bad_refused"] == 256
    assert report["bad_refused"] > 0 and report["unexpected"] == {} and report["healthy_after"]
    assert report["requests_per_s"] > 0 and report["latency_ms_p50"] <= report["latency_ms_p99"]
    assert load_test.main(["--url", "http://192.168.1.1:8080"]) == 2  # loopback only
    assert "loopback" in capsys.readouterr().err
