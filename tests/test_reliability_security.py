"""Security: no code evaluation or pickle anywhere, HTTP clients that talk only to their configured
address, and a judge API key that goes only to the judge and never into logs or errors."""

import ast
import json
import logging
import pathlib
import urllib.error

import pytest
from aiohttp import web

from coa_jax.env.client import RetrievalClient
from coa_jax.env.judge import ChatCompletionsJudge
from coa_jax.env.server import serve_app_in_thread

ROOT = pathlib.Path(__file__).resolve().parents[1]
UNSAFE_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}
UNSAFE_CALLS = {"eval", "exec", "compile", "__import__"}
KEY = "sk-test-0123456789-secret"


def _unsafe(path: pathlib.Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        where = f"{path.name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            out += [f"{where} imports {n}" for n in names if n.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.Call):
            fn = node.func
            if isinstance(fn, ast.Name) and fn.id in UNSAFE_CALLS:
                out.append(f"{where} calls {fn.id}()")
            if isinstance(fn, ast.Attribute) and isinstance(fn.value, ast.Name) and (fn.value.id, fn.attr) in {
                    ("torch", "load"), ("yaml", "load"), ("yaml", "unsafe_load"), ("os", "system")}:
                out.append(f"{where} calls {fn.value.id}.{fn.attr}()")
            for kw in node.keywords:
                value = getattr(kw.value, "value", None)
                if kw.arg in ("allow_pickle", "shell", "trust_remote_code") and value is True:
                    out.append(f"{where} passes {kw.arg}=True")
                if kw.arg == "weights_only" and value is False:
                    out.append(f"{where} passes weights_only=False")
    return out


def test_no_code_evaluation_or_pickle_in_the_package(tmp_path):
    """Checkpoints load from safetensors, GGUF and orbax only; tools never run model output as code."""
    files = sorted((ROOT / "coa_jax").rglob("*.py")) + sorted((ROOT / "launch").rglob("*.py"))
    assert len(files) > 50
    assert [problem for f in files for problem in _unsafe(f)] == []
    planted = tmp_path / "planted.py"  # the scanner itself finds each pattern
    planted.write_text("import pickle\nfrom dill import loads\neval('1')\ntorch.load(f)\n"
                       "np.load(f, allow_pickle=True)\n")
    assert len(_unsafe(planted)) == 5


class Recorder:
    """A server that records every request it receives (path, headers, body)."""

    def __init__(self, answer):
        self.seen = []
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self._handle)
        self.answer = answer

    async def _handle(self, request):
        self.seen.append((request.method, request.path_qs, dict(request.headers), await request.read()))
        return await self.answer(request)


def test_retrieval_client_only_talks_to_its_base_url():
    async def nothing(request):
        return web.json_response({"stolen": True})

    evil = Recorder(nothing)
    with serve_app_in_thread(evil.app) as evil_url:
        async def redirect_or_answer(request):
            body = json.loads(await request.read())
            if any("redirect" in q for q in body["query"]):
                raise web.HTTPTemporaryRedirect(evil_url + "/retrieve")
            return web.json_response([{"documents": [{"id": "1", "contents": "x"}]} for _ in body["query"]])

        honest = Recorder(redirect_or_answer)
        with serve_app_in_thread(honest.app) as url:
            hostile = [f"{evil_url}/steal", "../../admin", "x\r\nHost: evil\r\n\r\nGET /", "redirect please"]
            with RetrievalClient(url + "/api", batch_size=1, retries=0) as client:
                out = client.search(hostile, 1)
    assert evil.seen == []  # neither a redirect nor a URL in a query reaches another address
    assert {(m, p) for m, p, _, _ in honest.seen} == {("POST", "/api/retrieve")}
    assert sorted(json.loads(b)["query"][0] for *_, b in honest.seen) == sorted(hostile)  # queries are data
    assert [isinstance(o, list) for o in out] == [True, True, True, False]  # the redirected one failed


def test_judge_key_goes_only_to_the_judge_and_never_into_logs(monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("COA_TEST_JUDGE_KEY", KEY)

    async def nothing(request):
        return web.json_response({"choices": [{"message": {"content": "\\boxed{Correct}"}}]})

    evil = Recorder(nothing)
    with serve_app_in_thread(evil.app) as evil_url:
        async def judge_endpoint(request):
            if request.path.startswith("/moved"):
                raise web.HTTPFound(evil_url + "/v1/chat/completions")  # urllib would resend the key there
            if request.path.startswith("/broken"):
                return web.json_response({"error": f"echo {request.headers.get('Authorization')}"}, status=500)
            return web.json_response({"choices": [{"message": {"content": "\\boxed{Correct}"}}]})

        endpoint = Recorder(judge_endpoint)
        with serve_app_in_thread(endpoint.app) as url:
            assert ChatCompletionsJudge(url + "/v1", "m", api_key_env="COA_TEST_JUDGE_KEY")("a", ["a"]) is True
            errors = []
            for path in ("/moved", "/broken"):
                judge = ChatCompletionsJudge(url + path, "m", api_key_env="COA_TEST_JUDGE_KEY")
                with pytest.raises(urllib.error.HTTPError) as err:
                    judge("a", ["a"])
                errors.append(err.value)
    assert evil.seen == []  # the redirect was not followed, so the key did not travel
    assert [e.code for e in errors] == [302, 500]
    assert all(h.get("Authorization") == f"Bearer {KEY}" for _, _, h, _ in endpoint.seen)
    shown = caplog.text + "".join(f"{e}{e!r}" for e in errors) + repr(judge)
    assert KEY not in shown
    with pytest.raises(ValueError, match="must not carry credentials"):
        ChatCompletionsJudge(f"http://user:{KEY}@127.0.0.1:1/v1", "m")


def test_server_defaults_to_loopback():
    import argparse
    import inspect

    from coa_jax.commands import serve_retrieval
    from coa_jax.env import server

    for fn in (server.start_app, server.serve_app_in_thread, server.serve_in_thread, server.serve_forever):
        assert inspect.signature(fn).parameters["host"].default == "127.0.0.1", fn.__name__
    parser = argparse.ArgumentParser()
    serve_retrieval.add_arguments(parser)
    assert parser.parse_args(["--corpus", "c.jsonl"]).host == "127.0.0.1"
