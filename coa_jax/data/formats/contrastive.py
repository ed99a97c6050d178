"""CoT+A contrastive pairs (SFT stage 1): the reference's `CoT+A_data_1.5k.json`.

The file is one JSON array of
`{"conversation": [{"from": "human", "value": ...}, ...], "chosen": {"from": "gpt", "value": ...},
"rejected": {"from": "gpt", "value": ...}}`: a shared context and two continuations of it, the
chosen one reached the right answer. The reader also accepts the same records one per line
(JSON Lines). Other keys of a record are ignored.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from typing import Any

from coa_jax.data.formats.errors import LoadResult, RowIssue, collect_rows, get_field, type_name
from coa_jax.data.formats.jsonfile import iter_json_rows, write_json


@dataclasses.dataclass(frozen=True)
class Turn:
    """One ShareGPT-style turn: `speaker` is the `from` field (human, gpt, system, ...)."""

    speaker: str
    value: str

    def to_json(self) -> dict[str, str]:
        return {"from": self.speaker, "value": self.value}


@dataclasses.dataclass(frozen=True)
class ContrastivePair:
    """A context and two continuations; `chosen` is the one to prefer."""

    conversation: tuple[Turn, ...]
    chosen: Turn
    rejected: Turn

    def to_json(self) -> dict[str, Any]:
        return {
            "conversation": [t.to_json() for t in self.conversation],
            "chosen": self.chosen.to_json(),
            "rejected": self.rejected.to_json(),
        }


def _parse_turn(obj: Any, path: str) -> Turn:
    if not isinstance(obj, Mapping):
        raise RowIssue(f"{path}: expected object, got {type_name(obj)}")
    speaker = get_field(obj, "from", str, f"{path}.from")
    value = get_field(obj, "value", str, f"{path}.value")
    return Turn(speaker=speaker, value=value)


def parse_pair(obj: Any) -> ContrastivePair:
    """One decoded record -> ContrastivePair; raises RowIssue."""
    if not isinstance(obj, Mapping):
        raise RowIssue(f"row: expected object, got {type_name(obj)}")
    items = get_field(obj, "conversation", list, "conversation")
    if not items:
        raise RowIssue("conversation: empty list")
    turns = []
    for i, item in enumerate(items):
        try:
            turns.append(_parse_turn(item, "conversation[]"))
        except RowIssue as issue:
            raise RowIssue(issue.reason, where=f"conversation[{i}]") from None
    chosen = _parse_turn(get_field(obj, "chosen", dict, "chosen"), "chosen")
    rejected = _parse_turn(get_field(obj, "rejected", dict, "rejected"), "rejected")
    return ContrastivePair(conversation=tuple(turns), chosen=chosen, rejected=rejected)


def read_contrastive_json(path: str | os.PathLike, *, strict: bool = True) -> LoadResult[ContrastivePair]:
    """Reads CoT+A pairs from a JSON array file (or JSON Lines).

    Args:
      path: the file.
      strict: stop at the first bad record (True) or skip and count bad records (False). A
        syntax error ends reading in both modes: lenient mode counts it once and returns the
        records before it.

    Returns:
      LoadResult with one ContrastivePair per good record; rows are 1-based array positions.

    Raises:
      DataError: strict mode, a bad record (`file row 3: missing chosen`); either mode, a file
        that is not a JSON array / JSON Lines.
    """
    return collect_rows(os.fspath(path), iter_json_rows(path), parse_pair, strict=strict)


def write_contrastive_json(path: str | os.PathLike, pairs: Iterable[ContrastivePair]) -> int:
    """Writes pairs as one indented JSON array; returns how many."""
    records = [p.to_json() for p in pairs]
    write_json(path, records)
    return len(records)
