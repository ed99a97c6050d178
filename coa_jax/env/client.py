"""Async HTTP client of any FlashRAG-compatible retrieval server.

Batched (`batch_size` queries a request, sent concurrently under a `max_concurrency` cap), with a
per-request timeout, retries with exponential backoff and jitter, and an LRU cache of answers. A
query the server never answered properly (after retries) comes back as a `RetrievalFailure`, which
`SearchTool` renders as the reference's `<search_result> Retrieval failed. </search_result>`: never
a crash, never an empty success. A reply with the wrong number of results or malformed JSON is a
failure. When a batch fails with an answer from the server (an HTTP error or a bad body), it is
split in halves and retried, so one bad query fails alone.

All I/O runs on the client's own event loop in a background thread: `search` works from any
thread, with or without a running event loop, and `asearch` from any loop.

Requests go to `<base_url>/retrieve` only (redirects are not followed), in the reference client's
form `{"query": [...], "topk": k, "tok_k": k, "return_score": true}`; answers in the reference's
form (a list of `{"documents", "scores"}`) and in Search-R1's (`{"result": [...]}`) are accepted.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import math
import random
import threading
import time
import urllib.parse
from typing import Any, Sequence

import aiohttp

from coa_jax.env.background_loop import BackgroundLoop
from coa_jax.env.corpus import Hit, RetrievalFailure, document_from_json, score_or_nan
from coa_jax.env.observation import ObservationFormat, TokenCounter
from coa_jax.env.registry import check_options, format_from_options
from coa_jax.env.tags import ToolSpec

Outcome = list[Hit] | RetrievalFailure
_LATENCY_WINDOW = 10_000


@dataclasses.dataclass(frozen=True)
class ClientConfig:
    """Settings of a `RetrievalClient`.

    Attributes:
      base_url: the server, e.g. "http://127.0.0.1:8080" (requests go to base_url + "/retrieve").
      timeout_s: per-request time limit.
      retries: extra attempts after a failed request (so at most retries + 1 per batch).
      backoff_s / backoff_max_s: first retry delay, doubled each retry up to the max (times a
        random factor in [0.5, 1)).
      max_concurrency: requests in flight at once.
      batch_size: queries per request.
      cache_size: answers kept in the LRU cache (0: no cache).
      split_failed_batches: split a batch the server answered badly and retry the halves.
      max_response_bytes: a longer answer is a failure (read no further), so a broken or hostile
        server cannot fill the trainer's memory.
      seed: seed of the backoff jitter.
    """

    base_url: str
    timeout_s: float = 15.0
    retries: int = 2
    backoff_s: float = 0.2
    backoff_max_s: float = 5.0
    max_concurrency: int = 8
    batch_size: int = 64
    cache_size: int = 10_000
    split_failed_batches: bool = True
    max_response_bytes: int = 64 << 20
    seed: int = 0

    def __post_init__(self):
        url = urllib.parse.urlsplit(self.base_url)
        if url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment:
            raise ValueError(f"base_url must be http(s)://host[:port][/path], got {self.base_url!r}")
        for name in ("timeout_s", "backoff_s", "backoff_max_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name, low in (("retries", 0), ("max_concurrency", 1), ("batch_size", 1), ("cache_size", 0),
                          ("max_response_bytes", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")

    @property
    def retrieve_url(self) -> str:
        return self.base_url.rstrip("/") + "/retrieve"


class _RequestFailed(Exception):
    def __init__(self, message: str, *, retryable: bool, answered: bool):
        super().__init__(message)
        self.retryable = retryable
        self.answered = answered  # the server sent a reply (so splitting the batch may help)


def parse_response(data: Any, n_queries: int) -> list[list[Hit]]:
    """Hits per query from a decoded /retrieve answer, in either dialect.

    Raises:
      ValueError: unrecognised shape, wrong number of results, or a bad document.
    """
    if isinstance(data, dict) and "result" in data:  # Search-R1 dialect
        rows = data["result"]
        if not isinstance(rows, list):
            raise ValueError("'result' is not a list")
        out = []
        for row in rows:
            if not isinstance(row, list):
                raise ValueError("a 'result' entry is not a list")
            hits = []
            for item in row:
                if isinstance(item, dict) and "document" in item:
                    hits.append(Hit(document_from_json(item["document"], "document"), score_or_nan(item.get("score"))))
                else:
                    hits.append(Hit(document_from_json(item, "document"), math.nan))
            out.append(hits)
    else:  # reference dialect
        rows = [data] if isinstance(data, dict) and n_queries == 1 else data
        if not isinstance(rows, list):
            raise ValueError(f"unrecognised answer: a {type(data).__name__}")
        out = []
        for row in rows:
            if not isinstance(row, dict) or not isinstance(row.get("documents"), list):
                raise ValueError("an answer entry has no 'documents' list")
            docs = row["documents"]
            scores = row.get("scores")
            if not isinstance(scores, list) or len(scores) != len(docs):
                scores = [None] * len(docs)
            out.append([Hit(document_from_json(d, "document"), score_or_nan(s)) for d, s in zip(docs, scores)])
    if len(out) != n_queries:
        raise ValueError(f"{len(out)} results for {n_queries} queries")
    return out


class RetrievalClient:
    """Retrieval over HTTP; a `RetrievalBackend` for `SearchTool`.

    Args:
      config: a `ClientConfig`, or a base URL (other settings as keyword overrides).

    Use `close()` (or a `with` block) to stop its thread and connections.
    """

    def __init__(self, config: ClientConfig | str, **overrides: Any):
        if isinstance(config, str):
            config = ClientConfig(base_url=config, **overrides)
        elif overrides:
            config = dataclasses.replace(config, **overrides)
        self.config = config
        self._loop = BackgroundLoop("coa-retrieval-client")
        self._session: aiohttp.ClientSession | None = None
        self._sem: asyncio.Semaphore | None = None
        self._cache: collections.OrderedDict[tuple[str, int], list[Hit]] = collections.OrderedDict()
        self._rng = random.Random(config.seed)
        self._lock = threading.Lock()
        self._counts = collections.Counter()
        self._latencies_ms: collections.deque[float] = collections.deque(maxlen=_LATENCY_WINDOW)

    # ---- public entry points -------------------------------------------------------------
    def search(self, queries: Sequence[str], topk: int) -> list[Outcome]:
        """Hits (or a `RetrievalFailure`) per query, blocking."""
        return self._loop.run(self._search(list(queries), topk))

    async def asearch(self, queries: Sequence[str], topk: int) -> list[Outcome]:
        """Hits (or a `RetrievalFailure`) per query."""
        return await self._loop.run_async(self._search(list(queries), topk))

    def health(self) -> dict[str, Any]:
        """The server's /health answer.

        Raises:
          aiohttp.ClientError / TimeoutError: the server is unreachable or unhealthy.
        """
        return self._loop.run(self._health())

    def stats(self) -> dict[str, float]:
        """Counts (calls = queries asked, requests, failures, retries, cache_hits, split_batches)
        and request latency percentiles in ms (p50/p90/p99 over the last 10k requests)."""
        with self._lock:
            counts = dict(self._counts)
            lat = sorted(self._latencies_ms)
        out = {k: float(counts.get(k, 0)) for k in
               ("calls", "requests", "failures", "retries", "cache_hits", "split_batches")}
        for p in (50, 90, 99):
            out[f"latency_ms_p{p}"] = lat[max(0, math.ceil(p / 100 * len(lat)) - 1)] if lat else math.nan
        return out

    def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            self._loop.run(session.close())
        self._loop.close()

    def __enter__(self) -> "RetrievalClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- internals (run on the client's loop) -------------------------------------------
    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    async def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._sem = asyncio.Semaphore(self.config.max_concurrency)
            connector = aiohttp.TCPConnector(limit=self.config.max_concurrency)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def _health(self) -> dict[str, Any]:
        session = await self._ensure_session()
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        async with session.get(self.config.base_url.rstrip("/") + "/health", timeout=timeout,
                               allow_redirects=False) as resp:
            resp.raise_for_status()
            return await resp.json()

    async def _search(self, queries: list[str], topk: int) -> list[Outcome]:
        if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
            raise ValueError(f"topk must be a positive int, got {topk!r}")
        self._count("calls", len(queries))
        out: list[Outcome | None] = [None] * len(queries)
        todo: dict[str, list[int]] = {}
        for i, q in enumerate(queries):
            cached = self._cache.get((q, topk))
            if cached is not None:
                self._cache.move_to_end((q, topk))
                out[i] = list(cached)
                self._count("cache_hits")
            else:
                todo.setdefault(q, []).append(i)
        unique = list(todo)
        size = self.config.batch_size
        chunks = [unique[i:i + size] for i in range(0, len(unique), size)]
        answers = await asyncio.gather(*(self._fetch(chunk, topk) for chunk in chunks))
        for chunk, outcomes in zip(chunks, answers):
            for q, outcome in zip(chunk, outcomes):
                if not isinstance(outcome, RetrievalFailure) and self.config.cache_size:
                    self._cache[(q, topk)] = outcome
                    if len(self._cache) > self.config.cache_size:
                        self._cache.popitem(last=False)
                for i in todo[q]:
                    out[i] = outcome
        self._count("failures", sum(isinstance(o, RetrievalFailure) for o in out))
        return out  # type: ignore[return-value]

    async def _fetch(self, chunk: list[str], topk: int) -> list[Outcome]:
        error: _RequestFailed | None = None
        for attempt in range(self.config.retries + 1):
            if attempt:
                self._count("retries")
                delay = min(self.config.backoff_max_s, self.config.backoff_s * 2 ** (attempt - 1))
                await asyncio.sleep(delay * self._rng.uniform(0.5, 1.0))
            try:
                return await self._post(chunk, topk)
            except _RequestFailed as e:
                error = e
                if not e.retryable:
                    break
        assert error is not None
        if error.answered and len(chunk) > 1 and self.config.split_failed_batches:
            self._count("split_batches")
            mid = len(chunk) // 2
            left, right = await asyncio.gather(self._fetch(chunk[:mid], topk), self._fetch(chunk[mid:], topk))
            return left + right
        return [RetrievalFailure(str(error)) for _ in chunk]

    async def _post(self, chunk: list[str], topk: int) -> list[list[Hit]]:
        session = await self._ensure_session()
        assert self._sem is not None
        payload = {"query": chunk, "topk": topk, "tok_k": topk, "return_score": True}
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        async with self._sem:
            self._count("requests")
            start = time.perf_counter()
            try:
                async with session.post(self.config.retrieve_url, json=payload, timeout=timeout,
                                        allow_redirects=False) as resp:
                    status, body = resp.status, await _read_at_most(resp, self.config.max_response_bytes)
            except TimeoutError:  # before OSError: TimeoutError is one
                raise _RequestFailed(f"no answer within {self.config.timeout_s}s", retryable=True,
                                     answered=False) from None
            except (aiohttp.ClientError, OSError) as e:
                raise _RequestFailed(f"{type(e).__name__}: {e}", retryable=True, answered=False) from None
            finally:
                with self._lock:
                    self._latencies_ms.append((time.perf_counter() - start) * 1000.0)
        if status != 200:
            retryable = status >= 500 or status in (408, 429)
            raise _RequestFailed(f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}", retryable=retryable,
                                 answered=True)
        try:
            return parse_response(json.loads(body), len(chunk))
        except ValueError as e:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise _RequestFailed(f"bad answer: {e}", retryable=True, answered=True) from None


async def _read_at_most(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, or _RequestFailed as soon as it is known to exceed `limit` bytes."""
    def too_long(detail: str = "") -> _RequestFailed:
        return _RequestFailed(f"answer longer than max_response_bytes={limit}{detail}", retryable=False, answered=True)

    if resp.content_length is not None and resp.content_length > limit:
        raise too_long(f" (Content-Length {resp.content_length})")
    chunks, size = [], 0
    async for chunk in resp.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > limit:
            raise too_long()
        chunks.append(chunk)
    return b"".join(chunks)


_TOOL_OPTIONS = ("url", "topk") + tuple(f.name for f in dataclasses.fields(ClientConfig) if f.name != "base_url")


def http_search_tool(base_url: str, *, topk: int = 3, fmt: ObservationFormat | None = None, **config: Any):
    """A `SearchTool` over a `RetrievalClient` of `base_url` (config: `ClientConfig` fields)."""
    from coa_jax.env.search_tool import SearchTool

    return SearchTool(RetrievalClient(ClientConfig(base_url=base_url, **config)), topk=topk, fmt=fmt)


def tool_from_options(spec: ToolSpec, options: dict[str, Any], tokens: TokenCounter):
    """The "http" backend: `{"url": base_url, "topk": 3, ClientConfig fields, format keys}`."""
    from coa_jax.env.search_tool import SearchTool

    fmt = format_from_options(spec, options, tokens)
    check_options("http tool", options, _TOOL_OPTIONS)
    if "url" not in options:
        raise ValueError("http tool: option 'url' (the retrieval server's base URL) is required")
    topk = options.pop("topk", 3)
    client = RetrievalClient(ClientConfig(base_url=options.pop("url"), **options))
    return SearchTool(client, topk=topk, fmt=fmt, spec=spec)
