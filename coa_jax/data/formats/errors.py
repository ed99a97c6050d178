"""Row-level error reporting shared by every reader: strict vs lenient loading.

A row parser raises `RowIssue(reason)` for a bad row. `collect_rows` turns that into a
`DataError` naming file, row and reason (strict mode), or skips the row and counts it under its
reason (lenient mode). Reasons are short and carry no row-specific values, so that lenient
counts group like rows together; the position inside a row (e.g. `messages[3]`) goes in `where`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class DataError(ValueError):
    """A data file that cannot be read as its format says: `<file> row <n>: <reason>`.

    Attributes:
      source: the file (as given to the reader).
      row: 1-based row (line for JSONL, element for a JSON array, table row for parquet), or
        None for a problem with the whole file.
      reason: what is wrong.
    """

    def __init__(self, source: str, row: int | None, reason: str):
        self.source = source
        self.row = row
        self.reason = reason
        where = f"{source} row {row}" if row is not None else source
        super().__init__(f"{where}: {reason}")


class RowIssue(Exception):
    """Raised by row parsers; `reason` is the lenient-mode counting key."""

    def __init__(self, reason: str, where: str = ""):
        self.reason = reason
        self.where = where
        super().__init__(f"{reason} (at {where})" if where else reason)


@dataclasses.dataclass(frozen=True)
class LoadResult(Generic[T]):
    """Rows read from one file, and the rows skipped (lenient mode) counted per reason."""

    source: str
    rows: tuple[T, ...]
    skipped: Mapping[str, int] = dataclasses.field(default_factory=dict)

    @property
    def num_skipped(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        """One line: `<file>: 98 rows, 2 skipped (truncated JSON: 1, missing messages: 1)`."""
        text = f"{self.source}: {len(self.rows)} rows"
        if self.skipped:
            parts = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.skipped.items()))
            text += f", {self.num_skipped} skipped ({parts})"
        return text


def collect_rows(
    source: str,
    raw_rows: Iterable[tuple[int, Any]],
    parse: Callable[[Any], T],
    *,
    strict: bool,
) -> LoadResult[T]:
    """Parses numbered raw rows; strict raises on the first bad one, lenient counts skips.

    `raw_rows` may yield `(row, RowIssue)` for rows that failed before parsing (bad JSON); they
    are handled like rows whose parser raised.
    """
    rows: list[T] = []
    skipped: dict[str, int] = {}
    for row_number, raw in raw_rows:
        try:
            if isinstance(raw, RowIssue):
                raise raw
            rows.append(parse(raw))
        except RowIssue as issue:
            if strict:
                raise DataError(source, row_number, str(issue)) from None
            skipped[issue.reason] = skipped.get(issue.reason, 0) + 1
    return LoadResult(source=source, rows=tuple(rows), skipped=skipped)


def type_name(value: Any) -> str:
    """JSON-ish name of a Python value's type, for messages like `expected str, got int`."""
    if value is None:
        return "null"
    return {dict: "object", list: "list", bool: "bool"}.get(type(value), type(value).__name__)


def get_field(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], path: str) -> Any:
    """`obj[key]`, checked present, not null and of `kind`; raises RowIssue naming `path`."""
    if not isinstance(obj, Mapping):
        parent = path.rsplit(".", 1)[0] if "." in path else "row"
        raise RowIssue(f"{parent}: expected object, got {type_name(obj)}")
    if key not in obj or obj[key] is None:
        raise RowIssue(f"missing {path}")
    value = obj[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # bool is an int subclass; a JSON true is never a valid number field here
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        expected = " or ".join(k.__name__ for k in kinds)
        raise RowIssue(f"{path}: expected {expected}, got {type_name(value)}")
    return value
