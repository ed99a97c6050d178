"""Action and observation tags, and the parser that finds tool calls in generated text.

A tool call is `OPEN param CLOSE` (search: `<begin_search> query </end_search>`); its answer is
wrapped in the tool's result tags (`<search_result> ... </search_result>`). The parser knows any
number of tools, so the trajectory format is open to more than search.

Parse only the *response* (what the policy generated plus the observations appended to it), never
the prompt: the reference prompt itself mentions the tags.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Sequence

THINK_CLOSE = "</think>"


@dataclasses.dataclass(frozen=True)
class ToolSpec:
    """The tags of one tool.

    Attributes:
      name: the action type (the registry key), e.g. "search".
      open_tag / close_tag: delimit the call's parameter text.
      result_open / result_close: delimit the observation appended after the call.
    """

    name: str
    open_tag: str
    close_tag: str
    result_open: str
    result_close: str

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"ToolSpec.{field.name} must be a non-empty string, got {value!r}")
        tags = [self.open_tag, self.close_tag, self.result_open, self.result_close]
        if len(set(tags)) != 4:
            raise ValueError(f"ToolSpec {self.name!r}: the four tags must differ, got {tags}")


SEARCH_SPEC = ToolSpec("search", "<begin_search>", "</end_search>", "<search_result>", "</search_result>")
CALC_SPEC = ToolSpec("calc", "<begin_calc>", "</end_calc>", "<calc_result>", "</calc_result>")
KNOWN_SPECS: dict[str, ToolSpec] = {spec.name: spec for spec in (SEARCH_SPEC, CALC_SPEC)}


@dataclasses.dataclass(frozen=True)
class Action:
    """One tool call found in text.

    Attributes:
      tool: the tool's name (action type).
      query: the parameter text between the tags, stripped of surrounding whitespace.
      start: offset of the opening tag.
      end: offset just past the closing tag (the text's length for an unclosed call).
      closed: whether the closing tag was found.
    """

    tool: str
    query: str
    start: int
    end: int
    closed: bool


class ActionParser:
    """Finds tool calls of several tools in text, skipping the inside of observations.

    Args:
      specs: the tools to recognise; names and tags must be unique across tools.
      think_close: calls are searched only before the first occurrence of this tag (the
        reference executes calls inside the thinking part only); None searches everywhere.

    Raises:
      ValueError: duplicate tool names or tags shared between tools.
    """

    def __init__(self, specs: Sequence[ToolSpec], think_close: str | None = THINK_CLOSE):
        specs = list(specs)
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate tool names: {names}")
        all_tags = [t for s in specs for t in (s.open_tag, s.close_tag, s.result_open, s.result_close)]
        if len(set(all_tags)) != len(all_tags):
            raise ValueError(f"tools share tags: {all_tags}")
        self.specs = tuple(specs)
        self.think_close = think_close
        self._by_open = {s.open_tag: s for s in specs}
        self._result_close = {s.result_open: s.result_close for s in specs}
        opens = sorted(list(self._by_open) + list(self._result_close), key=len, reverse=True)
        self._opens_re = re.compile("|".join(re.escape(t) for t in opens)) if opens else None

    def _searchable(self, text: str) -> str:
        if self.think_close is None:
            return text
        cut = text.find(self.think_close)
        return text if cut < 0 else text[:cut]

    def find_actions(self, text: str, *, include_unclosed: bool = False) -> list[Action]:
        """All tool calls in `text`, in order.

        A call opened again before it is closed restarts at the later opening tag. Text inside
        `result_open ... result_close` (an observation, real or simulated) is skipped.

        Args:
          text: the response text.
          include_unclosed: also return a final call whose closing tag has not been generated yet.

        Returns:
          The calls, each with offsets into `text`.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        if self._opens_re is None:
            return []
        text = self._searchable(text)
        find = _ForwardFinder(text)
        actions: list[Action] = []
        pos = 0
        while True:
            m = self._opens_re.search(text, pos)
            if m is None:
                return actions
            tag = m.group(0)
            if tag in self._result_close:  # an observation: jump past it
                close_at = text.find(self._result_close[tag], m.end())
                if close_at < 0:
                    return actions
                pos = close_at + len(self._result_close[tag])
                continue
            spec = self._by_open[tag]
            close_at = find(spec.close_tag, m.end())
            reopened = self._opens_re.search(text, m.end())
            if reopened is not None and (close_at < 0 or reopened.start() < close_at):
                pos = reopened.start()
                continue
            if close_at < 0:
                if include_unclosed:
                    actions.append(Action(spec.name, text[m.end():].strip(), m.start(), len(text), False))
                return actions
            end = close_at + len(spec.close_tag)
            actions.append(Action(spec.name, text[m.end():close_at].strip(), m.start(), end, True))
            pos = end

    def parse_action(self, text: str) -> Action | None:
        """The closed call that ends `text` (only whitespace may follow), or None.

        This is what the rollout asks after decoding stopped at a closing tag.
        """
        actions = self.find_actions(text)
        if actions and not text[actions[-1].end:].strip():
            return actions[-1]
        return None

    def stop_strings(self) -> list[str]:
        """The closing tags at which decoding should stop so the host can run the tool."""
        return [s.close_tag for s in self.specs]


class _ForwardFinder:
    """`text.find(tag, start)` for non-decreasing `start`, scanning each stretch of text once.

    Without it, a text of n opening tags that are never closed (a degenerate model output) costs
    n scans to the end: quadratic, minutes for a megabyte.
    """

    def __init__(self, text: str):
        self.text = text
        self._next: dict[str, int] = {}  # tag -> its first offset at or after the last start (-1: none)

    def __call__(self, tag: str, start: int) -> int:
        hit = self._next.get(tag)
        if hit is None or 0 <= hit < start:
            hit = self.text.find(tag, start)
            self._next[tag] = hit
        return hit


def find_result_spans(text: str, specs: Sequence[ToolSpec]) -> list[tuple[int, int, str]]:
    """Character spans of observations (`result_open ... result_close`, tags included).

    Used to mark observation text the policy wrote itself (simulated environment). An unclosed
    observation at the end runs to the end of the text.

    Returns:
      (start, end, tool name) triples in order.
    """
    closes = {s.result_open: (s.result_close, s.name) for s in specs}
    if not closes:
        return []
    opens_re = re.compile("|".join(re.escape(t) for t in sorted(closes, key=len, reverse=True)))
    spans = []
    pos = 0
    while (m := opens_re.search(text, pos)) is not None:
        close_tag, name = closes[m.group(0)]
        close_at = text.find(close_tag, m.end())
        end = len(text) if close_at < 0 else close_at + len(close_tag)
        spans.append((m.start(), end, name))
        pos = end
    return spans
