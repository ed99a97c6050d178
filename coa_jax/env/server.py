"""A FlashRAG-compatible retrieval server (aiohttp), bound to loopback unless told otherwise.

`POST /retrieve` speaks both dialects in use:

- the AutoCoA reference (`run_retrieval_server.py`): `{"query": str | [str], "tok_k": k,
  "return_score": bool}` -> for a string query `{"documents": [{"id", "contents"}...],
  "scores": [...]}`, for a list one such object per query;
- the Search-R1 / verl FlashRAG server: `{"queries": [str], "topk": k, "return_scores": bool}` ->
  `{"result": [[{"document": {...}, "score": s}...]...]}` (bare documents without scores).

`topk` and the reference client's misspelled `tok_k` are both accepted (they must agree when both
are sent). Documents carry `id`, `title` and `contents`. `GET /health` reports the corpus size.
Bad requests get a 4xx answer with a JSON body `{"error": "..."}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import random
import socket
from typing import Any, Callable, Iterator, Protocol, Sequence

from aiohttp import web

from coa_jax.env.background_loop import BackgroundLoop
from coa_jax.env.corpus import Hit

log = logging.getLogger(__name__)


class Searcher(Protocol):
    num_docs: int

    def search(self, queries: Sequence[str], topk: int) -> list[list[Hit]]: ...


@dataclasses.dataclass(frozen=True)
class ServerLimits:
    """Request limits; requests over them are refused with 4xx."""

    max_body_bytes: int = 1 << 20
    max_batch: int = 512
    max_topk: int = 100
    max_query_chars: int = 4096


@dataclasses.dataclass(frozen=True)
class Latency:
    """Artificial latency added to each /retrieve answer (for benchmarks).

    Attributes:
      fixed_ms: a constant delay.
      median_ms: when > 0, adds a lognormal delay with this median and log-space `sigma`.
      seed: seed of the lognormal draws.
    """

    fixed_ms: float = 0.0
    median_ms: float = 0.0
    sigma: float = 0.5
    seed: int = 0

    def sampler(self) -> Callable[[], float]:
        """A function returning the next delay in seconds."""
        if self.fixed_ms < 0 or self.median_ms < 0 or self.sigma < 0:
            raise ValueError(f"latency settings must be >= 0, got {self}")
        rng = random.Random(self.seed)
        mu = math.log(self.median_ms / 1000.0) if self.median_ms > 0 else 0.0

        def draw() -> float:
            extra = rng.lognormvariate(mu, self.sigma) if self.median_ms > 0 else 0.0
            return self.fixed_ms / 1000.0 + extra

        return draw


class RequestError(ValueError):
    """A bad /retrieve request; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass(frozen=True)
class RetrieveRequest:
    queries: list[str]
    topk: int
    return_score: bool
    dialect: str  # "query" (reference; `single` when a bare string was sent) or "queries" (Search-R1)
    single: bool


def _pick(data: dict, names: Sequence[str], default: Any) -> Any:
    given = {n: data[n] for n in names if n in data}
    if len(set(json.dumps(v, sort_keys=True) for v in given.values())) > 1:
        raise RequestError(f"conflicting values for {' / '.join(given)}: {given}")
    return next(iter(given.values())) if given else default


def parse_request(data: Any, *, default_topk: int, limits: ServerLimits) -> RetrieveRequest:
    """Validates a decoded /retrieve body.

    Raises:
      RequestError: with a message naming the problem.
    """
    if not isinstance(data, dict):
        raise RequestError(f"the body must be a JSON object, got {type(data).__name__}")
    if ("query" in data) == ("queries" in data):
        raise RequestError("give exactly one of 'query' (str or list of str) or 'queries' (list of str)")
    dialect = "query" if "query" in data else "queries"
    raw = data[dialect]
    single = isinstance(raw, str)
    queries = [raw] if single else raw
    if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
        raise RequestError(f"'{dialect}' must be a string or a list of strings")
    if not queries:
        raise RequestError(f"'{dialect}' is empty")
    if len(queries) > limits.max_batch:
        raise RequestError(f"{len(queries)} queries in one request; the limit is {limits.max_batch}", 413)
    longest = max(len(q) for q in queries)
    if longest > limits.max_query_chars:
        raise RequestError(f"a query has {longest} characters; the limit is {limits.max_query_chars}", 413)
    topk = _pick(data, ("topk", "tok_k", "top_k"), default_topk)
    if topk is None:
        topk = default_topk
    if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
        raise RequestError(f"topk must be a positive integer, got {topk!r}")
    if topk > limits.max_topk:
        raise RequestError(f"topk {topk} is over the limit {limits.max_topk}")
    return_score = _pick(data, ("return_score", "return_scores"), dialect == "query")
    if not isinstance(return_score, bool):
        raise RequestError(f"return_score must be true or false, got {return_score!r}")
    return RetrieveRequest(queries, topk, return_score, dialect, single)


def build_response(req: RetrieveRequest, hits: list[list[Hit]]) -> Any:
    """The JSON answer in the request's dialect."""
    if req.dialect == "queries":
        if req.return_score:
            return {"result": [[{"document": h.doc.to_json(), "score": h.score} for h in row] for row in hits]}
        return {"result": [[h.doc.to_json() for h in row] for row in hits]}
    rows = []
    for row in hits:
        item: dict[str, Any] = {"documents": [h.doc.to_json() for h in row]}
        if req.return_score:
            item["scores"] = [h.score for h in row]
        rows.append(item)
    return rows[0] if req.single else rows


@web.middleware
async def _json_errors(request: web.Request, handler):
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return web.json_response({"error": e.text or e.reason}, status=e.status)
    except Exception:
        log.exception("retrieval server error on %s", request.path)
        return web.json_response({"error": "internal server error"}, status=500)


def make_app(searcher: Searcher, *, default_topk: int = 3, limits: ServerLimits = ServerLimits(),
             latency: Latency = Latency()) -> web.Application:
    """The aiohttp application serving `searcher` (e.g. a `BM25Retriever`)."""
    if default_topk < 1 or default_topk > limits.max_topk:
        raise ValueError(f"default_topk must be in [1, {limits.max_topk}], got {default_topk}")
    delay = latency.sampler()
    app = web.Application(client_max_size=limits.max_body_bytes, middlewares=[_json_errors])

    async def retrieve(request: web.Request) -> web.Response:
        body = await request.read()  # raises 413 over client_max_size
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            return web.json_response({"error": f"malformed JSON: {e}"}, status=400)
        try:
            req = parse_request(data, default_topk=default_topk, limits=limits)
        except RequestError as e:
            return web.json_response({"error": str(e)}, status=e.status)
        wait = delay()
        if wait > 0:
            await asyncio.sleep(wait)
        hits = await asyncio.get_running_loop().run_in_executor(None, searcher.search, req.queries, req.topk)
        return web.json_response(build_response(req, hits))

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "num_docs": searcher.num_docs, "default_topk": default_topk})

    app.router.add_post("/retrieve", retrieve)
    app.router.add_get("/health", health)
    return app


async def start_app(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, str]:
    """Starts `app` on `host:port` (port 0: an ephemeral one) in the running loop.

    Returns:
      (the runner, to `cleanup()`; the base URL, e.g. "http://127.0.0.1:40123").
    """
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        await web.SockSite(runner, sock).start()
    except BaseException:
        sock.close()
        await runner.cleanup()
        raise
    bound = sock.getsockname()[1]
    return runner, f"http://[{host}]:{bound}" if family == socket.AF_INET6 else f"http://{host}:{bound}"


@contextlib.contextmanager
def serve_app_in_thread(app: web.Application, *, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Runs `app` in a background thread for the `with` block; yields its base URL."""
    loop = BackgroundLoop("coa-retrieval-server")
    try:
        runner, url = loop.run(start_app(app, host, port))
        try:
            yield url
        finally:
            loop.run(runner.cleanup())
    finally:
        loop.close()


@contextlib.contextmanager
def serve_in_thread(searcher: Searcher, *, host: str = "127.0.0.1", port: int = 0, default_topk: int = 3,
                    limits: ServerLimits = ServerLimits(), latency: Latency = Latency()) -> Iterator[str]:
    """Serves `searcher` in-process on `host:port` (ephemeral by default); yields the base URL."""
    app = make_app(searcher, default_topk=default_topk, limits=limits, latency=latency)
    with serve_app_in_thread(app, host=host, port=port) as url:
        yield url


def serve_forever(searcher: Searcher, *, host: str = "127.0.0.1", port: int = 8080, default_topk: int = 3,
                  limits: ServerLimits = ServerLimits(), latency: Latency = Latency(),
                  on_ready: Callable[[str], None] = print) -> None:
    """Serves until SIGINT/SIGTERM; `on_ready` receives the base URL once listening."""
    import signal

    async def main():
        app = make_app(searcher, default_topk=default_topk, limits=limits, latency=latency)
        runner, url = await start_app(app, host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        on_ready(url)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())
