"""Chat-messages JSON Lines: the CoT and CoA trajectory files of the reference.

One conversation per line: `{"messages": [{"role": "user", "content": "..."}, ...]}`
(`CoT_data_1k.jsonl`, `CoA_data_5k.jsonl`). Other keys on a line are ignored.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from typing import Any

from coa_jax.data.formats.errors import LoadResult, RowIssue, collect_rows, get_field, type_name
from coa_jax.data.formats.jsonfile import iter_jsonl, write_jsonl

ROLES = ("system", "user", "assistant", "tool")


@dataclasses.dataclass(frozen=True)
class Message:
    """One chat turn. `role` is one of ROLES."""

    role: str
    content: str

    def to_json(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclasses.dataclass(frozen=True)
class Conversation:
    """An ordered list of messages (prompt turns then the assistant's trajectory)."""

    messages: tuple[Message, ...]

    def to_json(self) -> dict[str, Any]:
        return {"messages": [m.to_json() for m in self.messages]}


def parse_message(obj: Any, path: str) -> Message:
    """A `{role, content}` object -> Message; raises RowIssue naming `path` (e.g. `messages[]`)."""
    if not isinstance(obj, Mapping):
        raise RowIssue(f"{path}: expected object, got {type_name(obj)}")
    role = get_field(obj, "role", str, f"{path}.role")
    content = get_field(obj, "content", str, f"{path}.content")
    if role not in ROLES:
        raise RowIssue(f"{path}.role: unknown role", where=repr(role))
    return Message(role=role, content=content)


def parse_conversation(obj: Any) -> Conversation:
    """One decoded JSONL line -> Conversation; raises RowIssue."""
    if not isinstance(obj, Mapping):
        raise RowIssue(f"row: expected object, got {type_name(obj)}")
    items = get_field(obj, "messages", list, "messages")
    if not items:
        raise RowIssue("messages: empty list")
    messages = []
    for i, item in enumerate(items):
        try:
            messages.append(parse_message(item, "messages[]"))
        except RowIssue as issue:
            where = f"messages[{i}]" + (f" {issue.where}" if issue.where else "")
            raise RowIssue(issue.reason, where=where) from None
    return Conversation(messages=tuple(messages))


def read_messages_jsonl(path: str | os.PathLike, *, strict: bool = True) -> LoadResult[Conversation]:
    """Reads a messages JSONL file.

    Args:
      path: the file.
      strict: stop at the first bad row (True) or skip and count bad rows (False).

    Returns:
      LoadResult with one Conversation per good line.

    Raises:
      DataError: strict mode, a bad row (`file row 17: truncated JSON`).
    """
    return collect_rows(os.fspath(path), iter_jsonl(path), parse_conversation, strict=strict)


def write_messages_jsonl(path: str | os.PathLike, conversations: Iterable[Conversation]) -> int:
    """Writes conversations one per line; returns how many."""
    return write_jsonl(path, (c.to_json() for c in conversations))
