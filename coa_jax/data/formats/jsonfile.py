"""Low-level JSON / JSON Lines reading and writing with 1-based row numbers.

Readers yield `(row, value)` pairs, where `value` is the decoded JSON or a `RowIssue` for a row
that is not valid JSON ("truncated JSON" when the text ends inside a value). Writers are
deterministic: UTF-8, no ASCII escaping, `\\n` line ends, keys in the order given.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from typing import Any

from coa_jax.data.formats.errors import DataError, RowIssue

_DECODER = json.JSONDecoder()


def _decode_issue(error: json.JSONDecodeError, text: str) -> RowIssue:
    # the text ended inside a value: at its last character, or inside a string never closed
    if error.pos >= len(text.rstrip()) or error.msg.startswith("Unterminated string"):
        return RowIssue("truncated JSON")
    return RowIssue("invalid JSON", where=f"char {error.pos + 1}: {error.msg}")


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    """Yields (line number, decoded object or RowIssue); blank lines are skipped."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield number, RowIssue("not UTF-8")
                continue
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as error:
                yield number, _decode_issue(error, line)


def iter_json_array(path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    """Yields (element number, decoded element or RowIssue) from a file holding one JSON array.

    Elements before a syntax error are still returned; the first unreadable element is yielded
    as a RowIssue and reading stops there (the rest of the file cannot be re-synchronised).

    Raises:
      DataError: the file is not UTF-8 or does not start with `[`.
    """
    source = os.fspath(path)
    with open(path, "rb") as f:
        try:
            text = f.read().decode("utf-8")
        except UnicodeDecodeError as error:
            raise DataError(source, None, f"not UTF-8 ({error.reason})") from None
    pos = _skip_space(text, 0)
    if pos >= len(text) or text[pos] != "[":
        raise DataError(source, None, "expected a JSON array")
    pos = _skip_space(text, pos + 1)
    if pos < len(text) and text[pos] == "]":
        return
    number = 0
    while True:
        number += 1
        try:
            value, pos = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError as error:
            yield number, _decode_issue(error, text)
            return
        yield number, value
        pos = _skip_space(text, pos)
        if pos >= len(text):
            yield number + 1, RowIssue("truncated JSON")
            return
        if text[pos] == "]":
            return
        if text[pos] != ",":
            yield number + 1, RowIssue("invalid JSON", where=f"char {pos + 1}: expected ',' or ']'")
            return
        pos = _skip_space(text, pos + 1)


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def iter_json_rows(path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    """A JSON array file or a JSON Lines file, whichever `path` holds (decided by the first byte)."""
    with open(path, "rb") as f:
        head = f.read(4096).lstrip()
    return iter_json_array(path) if head.startswith(b"[") else iter_jsonl(path)


def dumps_line(obj: Any) -> str:
    """One JSON Lines record (no trailing newline)."""
    return json.dumps(obj, ensure_ascii=False)


def write_jsonl(path: str | os.PathLike, objs: Iterable[Any]) -> int:
    """Writes one JSON object per line; returns the number of lines."""
    count = 0
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for obj in objs:
            f.write(dumps_line(obj))
            f.write("\n")
            count += 1
    return count


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Writes one JSON document, indented, with a final newline."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(obj, f, ensure_ascii=False, indent=2)
        f.write("\n")
