"""The simulated environment of RL stage 1: the policy writes the observation itself.

A `WorldModelTool` stands where a real tool would, with `simulated = True`: the registry leaves
its closing tag out of the decode stop strings, so the policy keeps generating through
`<search_result> ... </search_result>` (its internal world model). If the rollout does stop at its
tag anyway, the tool answers with empty text so the policy continues. The observation text the
policy wrote is found with `simulated_observation_spans` and masked like a real observation.
"""

from __future__ import annotations

from typing import Any, Sequence

from coa_jax.env.observation import ObservationFormat, TokenCounter
from coa_jax.env.registry import Tool, ToolResult, check_options, format_from_options
from coa_jax.env.tags import SEARCH_SPEC, ToolSpec, find_result_spans


class WorldModelTool(Tool):
    """A tool whose observations the policy generates.

    Args:
      spec: the tags of the tool it simulates (default: search).
      fmt: used only for the budget-spent observation, which the host still writes.
    """

    simulated = True

    def __init__(self, *, spec: ToolSpec = SEARCH_SPEC, fmt: ObservationFormat | None = None):
        self.spec = spec
        self.fmt = fmt or ObservationFormat.for_spec(spec)
        self._calls = 0

    def call(self, queries: Sequence[str]) -> list[ToolResult]:
        self._calls += len(queries)
        return [ToolResult("", ok=True) for _ in queries]

    async def acall(self, queries: Sequence[str]) -> list[ToolResult]:
        return self.call(queries)

    def stats(self) -> dict[str, float]:
        return {"simulated_calls": float(self._calls)}


def simulated_observation_spans(text: str, spec: ToolSpec = SEARCH_SPEC) -> list[tuple[int, int]]:
    """Character spans `[start, end)` of the observations in policy-written text (tags included)."""
    return [(start, end) for start, end, _ in find_result_spans(text, [spec])]


def tool_from_options(spec: ToolSpec, options: dict[str, Any], tokens: TokenCounter) -> WorldModelTool:
    """The "world_model" backend (format keys only)."""
    fmt = format_from_options(spec, options, tokens)
    check_options("world_model tool", options, ())
    return WorldModelTool(spec=spec, fmt=fmt)
