"""verl-style parquet prompt files: the GRPO training, validation and evaluation prompts.

Columns: `data_source` (str), `prompt` (list of `{content, role}`), `ability` (str),
`reward_model` (`{ground_truth, style}`), `extra_info` (`{index, split}`), plus any other columns
(`_id`/`level` in the reference HotpotQA files, `id`/`source_file` in its evaluation file), kept
verbatim in `QAPrompt.extra`.

Quirks of the reference files handled here:
- `ground_truth` is a string in some files and a list of strings in others; a string may also
  join several answers with `<ans_split>`. Both become `QAPrompt.golds: tuple[str, ...]`.
- `data_source` can be the same on every row of a multi-benchmark file; when a `source_file`
  column is present (`NQ_dev.json`, `2WIKI_dev.json`, ...) it names the benchmark instead
  (`QAPrompt.dataset`).
Rows are numbered from 1 in error messages (`eval.parquet row 3: missing
reward_model.ground_truth`). `ability`, `reward_model.style` and `extra_info` are optional on
read (defaults `QA`, `rule`, index = row - 1, split = "").
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from coa_jax.data.formats.errors import (
    DataError,
    LoadResult,
    RowIssue,
    collect_rows,
    get_field,
    type_name,
)
from coa_jax.data.formats.messages import Message, parse_message

ANSWER_SEPARATOR = "<ans_split>"
# Text that ends the instruction and precedes the question in a prompt: the reference's, then
# the embedded world's.
QUESTION_MARKERS = ("Now, please answer the user's question below:", "Question:")
STANDARD_COLUMNS = ("data_source", "prompt", "ability", "reward_model", "extra_info")

_DATASET_ALIASES = {
    "nq": "nq",
    "naturalquestions": "nq",
    "triviaqa": "triviaqa",
    "hotpotqa": "hotpotqa",
    "2wiki": "2wiki",
    "2wikimultihopqa": "2wiki",
    "musique": "musique",
    "bamboogle": "bamboogle",
    "fanout": "fanout",
}


def resolve_dataset(data_source: str, source_file: str | None = None) -> str:
    """Canonical benchmark name (nq, triviaqa, hotpotqa, 2wiki, musique, bamboogle, ...).

    `source_file` wins when given: its stem up to the first `_` (`2WIKI_dev.json` -> 2wiki).
    Unknown names come back lower-cased with non-alphanumerics removed.
    """
    if source_file:
        stem = os.path.basename(source_file)
        name = stem.split("_", 1)[0] if "_" in stem else stem.split(".", 1)[0]
    else:
        name = data_source
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    return _DATASET_ALIASES.get(key, key)


def extract_question(prompt_text: str) -> str:
    """The question at the end of a prompt: the text after the last occurrence of the first
    QUESTION_MARKERS entry found (markers in priority order), stripped; else the whole text."""
    for marker in QUESTION_MARKERS:
        at = prompt_text.rfind(marker)
        if at >= 0:
            return prompt_text[at + len(marker) :].strip()
    return prompt_text.strip()


@dataclasses.dataclass(frozen=True)
class QAPrompt:
    """One prompt row. Field per column; `id`, `dataset`, `question` are derived views."""

    data_source: str
    prompt: tuple[Message, ...]
    golds: tuple[str, ...]
    ability: str = "QA"
    reward_style: str = "rule"
    index: int = 0
    split: str = ""
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def id(self) -> str:
        """`id` or `_id` column, else `<split>-<index>`."""
        for key in ("id", "_id"):
            if self.extra.get(key) is not None:
                return str(self.extra[key])
        return f"{self.split}-{self.index}"

    @property
    def dataset(self) -> str:
        """The benchmark, resolved from `source_file` when present (see `resolve_dataset`)."""
        return resolve_dataset(self.data_source, self.extra.get("source_file"))

    @property
    def question(self) -> str:
        """The question text, cut from the last user message after the instruction."""
        users = [m.content for m in self.prompt if m.role == "user"]
        return extract_question(users[-1] if users else self.prompt[-1].content)


def _parse_golds(value: Any) -> tuple[str, ...]:
    path = "reward_model.ground_truth"
    if isinstance(value, str):
        golds = tuple(g.strip() for g in value.split(ANSWER_SEPARATOR))
    elif isinstance(value, (list, tuple)):
        for item in value:
            if not isinstance(item, str):
                raise RowIssue(f"{path}[]: expected str, got {type_name(item)}")
        golds = tuple(value)
    else:
        raise RowIssue(f"{path}: expected str or list of str, got {type_name(value)}")
    # an empty gold would match an empty (missing) answer under exact match: drop it
    golds = tuple(g for g in golds if g.strip())
    if not golds:
        raise RowIssue(f"{path}: empty")
    return golds


def _optional(obj: Mapping[str, Any], key: str, kind: type, path: str, default: Any) -> Any:
    return default if obj.get(key) is None else get_field(obj, key, kind, path)


def parse_row(row: Mapping[str, Any], row_number: int) -> QAPrompt:
    """One table row (as from `Table.to_pylist`) -> QAPrompt; raises RowIssue."""
    data_source = get_field(row, "data_source", str, "data_source")
    items = get_field(row, "prompt", list, "prompt")
    if not items:
        raise RowIssue("prompt: empty list")
    messages = []
    for i, item in enumerate(items):
        try:
            messages.append(parse_message(item, "prompt[]"))
        except RowIssue as issue:
            raise RowIssue(issue.reason, where=f"prompt[{i}]") from None
    reward = get_field(row, "reward_model", dict, "reward_model")
    golds = _parse_golds(get_field(reward, "ground_truth", (str, list), "reward_model.ground_truth"))
    info = _optional(row, "extra_info", dict, "extra_info", {})
    return QAPrompt(
        data_source=data_source,
        prompt=tuple(messages),
        golds=golds,
        ability=_optional(row, "ability", str, "ability", "QA"),
        reward_style=_optional(reward, "style", str, "reward_model.style", "rule"),
        index=_optional(info, "index", int, "extra_info.index", row_number - 1),
        split=_optional(info, "split", str, "extra_info.split", ""),
        extra={k: v for k, v in row.items() if k not in STANDARD_COLUMNS},
    )


def read_verl_parquet(path: str | os.PathLike, *, strict: bool = True) -> LoadResult[QAPrompt]:
    """Reads a verl parquet prompt file.

    Args:
      path: the file.
      strict: stop at the first bad row (True) or skip and count bad rows (False).

    Returns:
      LoadResult with one QAPrompt per good row.

    Raises:
      DataError: the file is not readable parquet; strict mode, a bad row.
    """
    source = os.fspath(path)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as error:
        raise DataError(source, None, f"not a readable parquet file ({error})") from None
    # parse_row needs the row number too (default extra_info.index), so each raw row carries it
    numbered = ((n, (n, row)) for n, row in enumerate(table.to_pylist(), start=1))
    return collect_rows(source, numbered, _parse_numbered_row, strict=strict)


def _parse_numbered_row(numbered_row: tuple[int, Mapping[str, Any]]) -> QAPrompt:
    number, row = numbered_row
    return parse_row(row, number)


_MESSAGE_TYPE = pa.struct([("content", pa.string()), ("role", pa.string())])
_EXTRA_INFO_TYPE = pa.struct([("index", pa.int64()), ("split", pa.string())])


def write_verl_parquet(
    path: str | os.PathLike, prompts: Iterable[QAPrompt], *, ground_truth: str = "list"
) -> int:
    """Writes prompts as a verl parquet file; returns the number of rows.

    Args:
      path: the file.
      prompts: rows; their `extra` columns come first (in first-seen order, null where a row
        lacks one), then the standard columns.
      ground_truth: "list" (list of strings, like the reference evaluation file) or "str" (one
        string, several answers joined by `<ans_split>`, like the reference HotpotQA files).
    """
    if ground_truth not in ("list", "str"):
        raise ValueError(f"ground_truth must be 'list' or 'str', got {ground_truth!r}")
    rows = list(prompts)
    extra_names: dict[str, None] = {}
    for p in rows:
        extra_names.update(dict.fromkeys(p.extra))
    gt_type = pa.list_(pa.string()) if ground_truth == "list" else pa.string()
    columns: dict[str, pa.Array] = {n: pa.array([p.extra.get(n) for p in rows]) for n in extra_names}
    columns["data_source"] = pa.array([p.data_source for p in rows], pa.string())
    columns["prompt"] = pa.array(
        [[{"content": m.content, "role": m.role} for m in p.prompt] for p in rows], pa.list_(_MESSAGE_TYPE)
    )
    columns["ability"] = pa.array([p.ability for p in rows], pa.string())
    golds = [list(p.golds) if ground_truth == "list" else ANSWER_SEPARATOR.join(p.golds) for p in rows]
    columns["reward_model"] = pa.array(
        [{"ground_truth": g, "style": p.reward_style} for g, p in zip(golds, rows)],
        pa.struct([("ground_truth", gt_type), ("style", pa.string())]),
    )
    columns["extra_info"] = pa.array([{"index": p.index, "split": p.split} for p in rows], _EXTRA_INFO_TYPE)
    pq.write_table(pa.table(columns), path)
    return len(rows)
