"""Tools and the tool library: a map from action type to tool (SPEC Algorithm 1).

Every tool answers a batch of parameter strings with one `ToolResult` each. A *simulated* tool
(the world model of RL stage 1) answers with empty text: the rollout does not stop at its closing
tag and lets the policy write the observation itself. Real and simulated tools share this
interface, so a schedule can swap the search backend mid-run (`ToolRegistry.with_backend`).
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import dataclasses
import importlib
from typing import Any, Callable, Mapping, Sequence

from coa_jax.env.observation import ObservationFormat, TokenCounter
from coa_jax.env.tags import KNOWN_SPECS, Action, ActionParser, ToolSpec, THINK_CLOSE


@dataclasses.dataclass(frozen=True)
class ToolResult:
    """One tool answer.

    Attributes:
      text: exactly what the host appends after the call's closing tag ("" for a simulated tool).
      ok: False when the tool failed (text is then the failure observation).
      latency_s: wall time of the call that produced it (shared by a batch).
      error: why it failed (None when ok).
    """

    text: str
    ok: bool
    latency_s: float = 0.0
    error: str | None = None


class Tool(abc.ABC):
    """A tool behind one action type.

    Subclasses set `spec` and `fmt` and implement `call`; `acall` runs `call` in a worker thread
    unless overridden (I/O-bound tools override it with native async code).
    """

    spec: ToolSpec
    fmt: ObservationFormat
    simulated: bool = False

    @property
    def name(self) -> str:
        return self.spec.name

    @abc.abstractmethod
    def call(self, queries: Sequence[str]) -> list[ToolResult]:
        """Answers `queries` (one result per query, same order); never raises for a bad query."""

    async def acall(self, queries: Sequence[str]) -> list[ToolResult]:
        """Async `call`."""
        return await asyncio.to_thread(self.call, list(queries))

    def failure_result(self, error: str, latency_s: float = 0.0) -> ToolResult:
        return ToolResult(self.fmt.failure(), ok=False, latency_s=latency_s, error=error)

    def limit_result(self) -> ToolResult:
        """The observation when the action budget is spent (no call is made)."""
        return ToolResult(self.fmt.limit(), ok=True)

    def stats(self) -> dict[str, float]:
        """Counters for metrics (empty unless the tool keeps some)."""
        return {}

    def close(self) -> None:
        """Releases resources (threads, connections); a no-op by default."""


# backend name -> factory(spec, options, tokens) -> Tool. Built-ins are imported on first use so
# that importing the registry does not import bm25s or aiohttp.
ToolFactory = Callable[[ToolSpec, dict, TokenCounter], Tool]
_BUILTIN_BACKENDS = {
    "bm25": "coa_jax.env.bm25:tool_from_options",
    "http": "coa_jax.env.client:tool_from_options",
    "world_model": "coa_jax.env.world_model:tool_from_options",
    "calculator": "coa_jax.env.calculator:tool_from_options",
}
_BACKENDS: dict[str, ToolFactory] = {}


def register_backend(name: str, factory: ToolFactory, *, overwrite: bool = False) -> None:
    """Makes `factory` available to `ToolRegistry.from_config` under `name`."""
    if not overwrite and (name in _BACKENDS or name in _BUILTIN_BACKENDS):
        raise ValueError(f"tool backend {name!r} is already registered")
    _BACKENDS[name] = factory


def backend_names() -> list[str]:
    return sorted(set(_BACKENDS) | set(_BUILTIN_BACKENDS))


def _factory(name: str) -> ToolFactory:
    if name in _BACKENDS:
        return _BACKENDS[name]
    if name not in _BUILTIN_BACKENDS:
        raise KeyError(f"unknown tool backend {name!r}; choose from {backend_names()}")
    module, attr = _BUILTIN_BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), attr)


def build_tool(name: str, backend: str, options: Mapping[str, Any] | None = None, *,
               spec: ToolSpec | None = None, tokens: TokenCounter | None = None) -> Tool:
    """One tool from config.

    Args:
      name: the action type ("search", "calc", or any name given with `spec`).
      backend: a registered backend ("bm25", "http", "world_model", "calculator", ...).
      options: backend options (e.g. {"corpus": path, "topk": 3, "max_tokens": 512}); unknown
        keys are an error.
      spec: the tags, required for names other than the known ones.
      tokens: how observation length is counted for `max_tokens`.

    Raises:
      KeyError: unknown backend or tool name without a spec.
      ValueError: bad options.
    """
    if spec is None:
        if name not in KNOWN_SPECS:
            raise KeyError(f"tool {name!r} has no known tags ({sorted(KNOWN_SPECS)}); pass spec=")
        spec = KNOWN_SPECS[name]
    elif spec.name != name:
        raise ValueError(f"spec name {spec.name!r} does not match tool name {name!r}")
    return _factory(backend)(spec, dict(options or {}), tokens or TokenCounter())


class ToolRegistry:
    """The tool library: tools by action type, the parser for their tags, batched execution.

    Args:
      tools: the tools; names must be unique.
      think_close: see `ActionParser`.
    """

    def __init__(self, tools: Sequence[Tool], think_close: str | None = THINK_CLOSE):
        self._tools = {}
        for tool in tools:
            if tool.name in self._tools:
                raise ValueError(f"two tools named {tool.name!r}")
            self._tools[tool.name] = tool
        self.think_close = think_close
        self.parser = ActionParser([t.spec for t in tools], think_close=think_close)

    @classmethod
    def from_config(cls, backends: Mapping[str, str], options: Mapping[str, Mapping[str, Any]] | None = None,
                    *, specs: Mapping[str, ToolSpec] | None = None, tokens: TokenCounter | None = None,
                    think_close: str | None = THINK_CLOSE) -> "ToolRegistry":
        """Builds tools from names, e.g. `{"search": "bm25", "calc": "calculator"}`.

        Args:
          backends: tool name -> backend name.
          options: tool name -> backend options.
          specs: tags for tool names other than the known ones.
          tokens: observation token counter shared by all tools.
        """
        options = dict(options or {})
        unknown = set(options) - set(backends)
        if unknown:
            raise ValueError(f"options given for tools not in the config: {sorted(unknown)}")
        specs = specs or {}
        tools = [build_tool(name, backend, options.get(name), spec=specs.get(name), tokens=tokens)
                 for name, backend in backends.items()]
        return cls(tools, think_close=think_close)

    def __contains__(self, name: str) -> bool:
        return name in self._tools

    def __getitem__(self, name: str) -> Tool:
        if name not in self._tools:
            raise KeyError(f"no tool {name!r}; the registry has {sorted(self._tools)}")
        return self._tools[name]

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    @property
    def tools(self) -> list[Tool]:
        return list(self._tools.values())

    def with_tool(self, tool: Tool) -> "ToolRegistry":
        """A new registry with `tool` replacing the tool of the same name (or added)."""
        tools = dict(self._tools)
        tools[tool.name] = tool
        return ToolRegistry(list(tools.values()), think_close=self.think_close)

    def with_backend(self, name: str, backend: str, options: Mapping[str, Any] | None = None,
                     *, tokens: TokenCounter | None = None) -> "ToolRegistry":
        """A new registry whose tool `name` uses another backend (e.g. world_model -> http)."""
        spec = self[name].spec
        return self.with_tool(build_tool(name, backend, options, spec=spec, tokens=tokens))

    def stop_strings(self) -> list[str]:
        """Closing tags at which decoding must stop: those of the real (non-simulated) tools."""
        return [t.spec.close_tag for t in self._tools.values() if not t.simulated]

    def parse_action(self, text: str) -> Action | None:
        """The call that ends the response text, if any (see `ActionParser.parse_action`)."""
        return self.parser.parse_action(text)

    def limit_result(self, name: str) -> ToolResult:
        """The budget-spent observation of tool `name`."""
        return self[name].limit_result()

    async def arun(self, actions: Sequence[Action]) -> list[ToolResult]:
        """Runs calls, one batch per tool, the tools concurrently; results in input order."""
        by_tool: dict[str, list[int]] = {}
        for i, action in enumerate(actions):
            self[action.tool]  # fail early on an unknown tool
            by_tool.setdefault(action.tool, []).append(i)
        results: list[ToolResult | None] = [None] * len(actions)

        async def one(name: str, idx: list[int]):
            answers = await self._tools[name].acall([actions[i].query for i in idx])
            if len(answers) != len(idx):
                raise RuntimeError(f"tool {name!r} returned {len(answers)} results for {len(idx)} queries")
            for i, answer in zip(idx, answers):
                results[i] = answer

        await asyncio.gather(*(one(name, idx) for name, idx in by_tool.items()))
        return results  # type: ignore[return-value]

    def run(self, actions: Sequence[Action]) -> list[ToolResult]:
        """Sync `arun`; works whether or not the calling thread runs an event loop."""
        from coa_jax.env.background_loop import run_sync

        return run_sync(self.arun(actions))

    def submit(self, actions: Sequence[Action]) -> "concurrent.futures.Future[list[ToolResult]]":
        """Starts `arun` in the background and returns at once, so a host loop can keep decoding
        other rows while the tools work; `future.result()` collects the results."""
        from coa_jax.env.background_loop import submit

        return submit(self.arun(list(actions)))

    def stats(self) -> dict[str, float]:
        """Every tool's counters, keys prefixed with the tool name."""
        return {f"{name}/{k}": v for name, tool in self._tools.items() for k, v in tool.stats().items()}

    def close(self) -> None:
        for tool in self._tools.values():
            tool.close()


def check_options(where: str, options: dict, allowed: Sequence[str]) -> None:
    """Raises ValueError naming options not in `allowed`."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"{where}: unknown options {unknown}; allowed: {sorted(allowed)}")


FORMAT_OPTIONS = ("max_tokens", "lead", "trail", "failure_text", "limit_text")


def format_from_options(spec: ToolSpec, options: dict, tokens: TokenCounter, **defaults: Any) -> ObservationFormat:
    """The observation format of `spec`: `defaults`, then the format keys of `options` (removed)."""
    overrides = dict(defaults)
    overrides.update({k: options.pop(k) for k in FORMAT_OPTIONS if k in options})
    return ObservationFormat.for_spec(spec, tokens=tokens, **overrides)
