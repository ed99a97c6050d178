"""Rendering of observations, byte-compatible with the reference rollout.

The reference RL rollout (AutoCoA `vllm_rollout_coa.py`) appends, after the text that ends with
`</end_search>`:

    "\\n\\n" + "<search_result> " + BODY + " </search_result>" + "\\n\\n"

where BODY is `"\\n".join(f"result {i}: {doc['contents']}")` over the returned documents (a bare
`contents` when top-k is 1), `Retrieval failed.` when the tool failed, and
`Reach the limit of search times.` when the action budget is spent. (Its success path adds a
second "\\n\\n" after the closing tag; `trail` reproduces that when set to "\\n\\n\\n\\n".)

The body can be capped at a number of tokens; the counter is pluggable so the policy's own
tokenizer can stand in for the default whitespace words.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Sequence

from coa_jax.env.tags import SEARCH_SPEC, ToolSpec

_WORD = re.compile(r"\S+")


def whitespace_count(text: str) -> int:
    """Number of whitespace-separated words."""
    return sum(1 for _ in _WORD.finditer(text))


def whitespace_truncate(text: str, max_tokens: int) -> str:
    """`text` cut just after its `max_tokens`-th word (original spacing kept)."""
    if max_tokens <= 0:
        return ""
    for i, m in enumerate(_WORD.finditer(text), start=1):
        if i == max_tokens:
            return text[:m.end()]
    return text


@dataclasses.dataclass(frozen=True)
class TokenCounter:
    """How observation length is measured and cut.

    Attributes:
      count: text -> number of tokens.
      truncate: (text, n) -> the longest prefix of text with at most n tokens.
    """

    count: Callable[[str], int] = whitespace_count
    truncate: Callable[[str, int], str] = whitespace_truncate

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> "TokenCounter":
        """A counter backed by a tokenizer with `encode(text, add_special_tokens=False)` and `decode(ids)`."""

        def count(text: str) -> int:
            return len(tokenizer.encode(text, add_special_tokens=False))

        def truncate(text: str, max_tokens: int) -> str:
            ids = tokenizer.encode(text, add_special_tokens=False)
            return text if len(ids) <= max_tokens else tokenizer.decode(ids[:max(max_tokens, 0)])

        return cls(count, truncate)


WHITESPACE = TokenCounter()


@dataclasses.dataclass(frozen=True)
class ObservationFormat:
    """How one tool's observations are written.

    Attributes:
      open_tag / close_tag: the result tags.
      lead: text between the call's closing tag and the observation.
      trail: text after the observation, before the model continues.
      failure_text: body when the tool failed.
      limit_text: body when the action budget is spent.
      max_tokens: cap on the body length (None: no cap); failure/limit bodies are never cut.
      tokens: how the cap is measured.
    """

    open_tag: str = SEARCH_SPEC.result_open
    close_tag: str = SEARCH_SPEC.result_close
    lead: str = "\n\n"
    trail: str = "\n\n"
    failure_text: str = "Retrieval failed."
    limit_text: str = "Reach the limit of search times."
    max_tokens: int | None = None
    tokens: TokenCounter = WHITESPACE

    def __post_init__(self):
        if self.max_tokens is not None and (not isinstance(self.max_tokens, int) or self.max_tokens < 1):
            raise ValueError(f"max_tokens must be a positive int or None, got {self.max_tokens!r}")

    @classmethod
    def for_spec(cls, spec: ToolSpec, **overrides: Any) -> "ObservationFormat":
        """The format with `spec`'s result tags; `overrides` set any other attribute."""
        return cls(open_tag=spec.result_open, close_tag=spec.result_close, **overrides)

    def wrap(self, body: str) -> str:
        """The full text to append: lead, tags around the body (one space inside each), trail."""
        return f"{self.lead}{self.open_tag} {body} {self.close_tag}{self.trail}"

    def capped(self, body: str) -> str:
        """`body` cut to `max_tokens` tokens (unchanged when there is no cap or it fits)."""
        if self.max_tokens is None or self.tokens.count(body) <= self.max_tokens:
            return body
        return self.tokens.truncate(body, self.max_tokens)

    def documents(self, contents: Sequence[str], *, numbered: bool = True) -> str:
        """The observation for retrieved documents.

        Args:
          contents: each document's `contents`, best first.
          numbered: prefix "result i: " (the reference numbers unless top-k is 1).
        """
        if numbered or len(contents) != 1:
            body = "\n".join(f"result {i}: {c}" for i, c in enumerate(contents, start=1))
        else:
            body = contents[0]
        return self.wrap(self.capped(body))

    def text(self, body: str) -> str:
        """The observation for a free-text body (capped)."""
        return self.wrap(self.capped(body))

    def failure(self) -> str:
        return self.wrap(self.failure_text)

    def limit(self) -> str:
        return self.wrap(self.limit_text)
