"""The search tool: any retrieval backend, rendered as the reference's observations."""

from __future__ import annotations

import time
from typing import Protocol, Sequence

from coa_jax.env.corpus import Hit, RetrievalFailure
from coa_jax.env.observation import ObservationFormat
from coa_jax.env.registry import Tool, ToolResult
from coa_jax.env.tags import SEARCH_SPEC, ToolSpec

Outcome = list[Hit] | RetrievalFailure


class RetrievalBackend(Protocol):
    """Something that answers batches of queries with ranked hits (in-process BM25, HTTP client)."""

    def search(self, queries: Sequence[str], topk: int) -> Sequence[Outcome]: ...

    async def asearch(self, queries: Sequence[str], topk: int) -> Sequence[Outcome]: ...

    def stats(self) -> dict[str, float]: ...

    def close(self) -> None: ...


class SearchTool(Tool):
    """`<begin_search> q </end_search>` answered by `<search_result> result 1: ... </search_result>`.

    Args:
      backend: the retrieval backend.
      topk: documents per query (the reference uses 3).
      fmt: observation format (default: the reference's search format).
      spec: the tags (default: search).
      max_query_chars: longer queries are cut to this many characters (counted in
        `stats()["truncated_queries"]`); the default equals the retrieval server's request limit,
        so a runaway model output never sends megabytes nor earns a refusal.

    An empty query or a backend failure yields the failure observation for that query only.
    """

    simulated = False

    def __init__(self, backend: RetrievalBackend, *, topk: int = 3, fmt: ObservationFormat | None = None,
                 spec: ToolSpec = SEARCH_SPEC, max_query_chars: int = 4096):
        if not isinstance(topk, int) or topk < 1:
            raise ValueError(f"topk must be a positive int, got {topk!r}")
        if not isinstance(max_query_chars, int) or max_query_chars < 1:
            raise ValueError(f"max_query_chars must be a positive int, got {max_query_chars!r}")
        self.backend = backend
        self.topk = topk
        self.spec = spec
        self.fmt = fmt or ObservationFormat.for_spec(spec)
        self.max_query_chars = max_query_chars
        self._truncated = 0

    def _asked(self, queries: Sequence[str]) -> tuple[list[int], list[str]]:
        """Indices of the non-empty queries and those queries, cut to `max_query_chars`."""
        asked = [i for i, q in enumerate(queries) if q.strip()]
        long = [i for i in asked if len(queries[i]) > self.max_query_chars]
        self._truncated += len(long)
        return asked, [queries[i][:self.max_query_chars] for i in asked]

    def _render(self, queries: Sequence[str], outcomes: Sequence[Outcome] | Exception, latency_s: float,
                asked: list[int]) -> list[ToolResult]:
        results: list[ToolResult] = [self.failure_result("empty query") for _ in queries]
        if isinstance(outcomes, Exception):
            error = f"{type(outcomes).__name__}: {outcomes}"
            for i in asked:
                results[i] = self.failure_result(error, latency_s)
            return results
        if len(outcomes) != len(asked):
            for i in asked:
                results[i] = self.failure_result(f"backend returned {len(outcomes)} results for {len(asked)} queries",
                                                 latency_s)
            return results
        for i, outcome in zip(asked, outcomes):
            if isinstance(outcome, RetrievalFailure):
                results[i] = self.failure_result(outcome.reason, latency_s)
            else:
                text = self.fmt.documents([hit.doc.contents for hit in outcome], numbered=self.topk != 1)
                results[i] = ToolResult(text, ok=True, latency_s=latency_s)
        return results

    def call(self, queries: Sequence[str]) -> list[ToolResult]:
        queries = list(queries)
        asked, texts = self._asked(queries)
        start = time.perf_counter()
        try:
            outcomes = self.backend.search(texts, self.topk) if asked else []
        except Exception as e:  # a tool never raises for the rollout; the failure is reported per query
            outcomes = e
        return self._render(queries, outcomes, time.perf_counter() - start, asked)

    async def acall(self, queries: Sequence[str]) -> list[ToolResult]:
        queries = list(queries)
        asked, texts = self._asked(queries)
        start = time.perf_counter()
        try:
            outcomes = await self.backend.asearch(texts, self.topk) if asked else []
        except Exception as e:
            outcomes = e
        return self._render(queries, outcomes, time.perf_counter() - start, asked)

    def stats(self) -> dict[str, float]:
        return {**self.backend.stats(), "truncated_queries": float(self._truncated)}

    def close(self) -> None:
        self.backend.close()
