"""Readers for the public benchmarks' local files, in their own published formats.

| benchmark | accepted files |
|-----------|----------------|
| any       | FlashRAG JSONL: `{"id", "question", "golden_answers", "metadata"?}` (`nq/dev.jsonl`, ...) |
| nq        | NQ-open JSONL: `{"question", "answer": [...]}` (`NQ-open.dev.jsonl`) |
| triviaqa  | TriviaQA JSON: `{"Data": [{"QuestionId", "Question", "Answer": {"Value", "Aliases"}}]}` |
| hotpotqa  | HotpotQA JSON array: `{"_id", "question", "answer", "type", "level", ...}` |
| 2wiki     | 2WikiMultihopQA JSON array: `{"_id", "type", "question", "answer", "evidences", ...}` |
| musique   | MuSiQue JSONL: `{"id", "question", "answer", "answer_aliases", "question_decomposition", "answerable"}` |
| bamboogle | CSV with `Question` and `Answer` columns |

The split comes from the file name (`train`; `dev`/`val`/`validation`; `test`; a name with none
of them, like `bamboogle.csv`, is `test`). Rows without a usable question or answer (the
unanswerable MuSiQue rows, test files without answers) are errors in strict mode and skipped
and counted per reason otherwise (`coa_jax.data.formats.LoadResult`).
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

from coa_jax.data.formats.errors import DataError, LoadResult, RowIssue, collect_rows, get_field, type_name
from coa_jax.data.formats.jsonfile import iter_json_rows, iter_jsonl
from coa_jax.data.tfds.records import QARecord

BENCHMARKS = ("nq", "triviaqa", "hotpotqa", "2wiki", "musique", "bamboogle")
SUFFIXES = (".jsonl", ".json", ".csv")
_SPLIT_WORDS = (("train", "train"), ("validation", "dev"), ("dev", "dev"), ("val", "dev"), ("test", "test"))


def split_of(path: str) -> str:
    """train / dev / test from a file name (test when the name says none of them)."""
    stem = os.path.basename(path).lower()
    for word, split in _SPLIT_WORDS:
        if re.search(rf"(?<![a-z]){word}(?![a-z])", stem):
            return split
    return "test"


def find_files(manual_dir: str | os.PathLike) -> dict[str, str]:
    """split -> the one data file for it in `manual_dir` (.jsonl, .json or .csv).

    Raises:
      DataError: no data file, or two files for one split.
    """
    root = os.fspath(manual_dir)
    found: dict[str, list[str]] = {}
    for name in sorted(os.listdir(root)):
        if name.endswith(SUFFIXES):
            found.setdefault(split_of(name), []).append(os.path.join(root, name))
    if not found:
        raise DataError(root, None, f"no benchmark file ({', '.join(SUFFIXES)}) in the directory")
    for split, paths in found.items():
        if len(paths) > 1:
            raise DataError(root, None, f"several files for split {split}: {[os.path.basename(p) for p in paths]}; "
                                        "pass the files explicitly")  # fmt: skip
    return {split: paths[0] for split, paths in found.items()}


def _golds(*values: Any) -> tuple[str, ...]:
    out: list[str] = []
    for value in values:
        items = value if isinstance(value, (list, tuple)) else [value]
        out += [str(v).strip() for v in items if v is not None and str(v).strip()]
    golds = tuple(dict.fromkeys(out))
    if not golds:
        raise RowIssue("no answer")
    return golds


def _question(row: Mapping[str, Any], key: str = "question") -> str:
    text = get_field(row, key, str, key).strip()
    if not text:
        raise RowIssue(f"{key}: empty")
    return text


def _row_id(row: Mapping[str, Any], keys: tuple[str, ...], default: str) -> str:
    return next((str(row[k]) for k in keys if row.get(k) is not None), default)


def _flashrag(row: Mapping[str, Any]) -> dict[str, Any]:
    meta = row.get("metadata") if isinstance(row.get("metadata"), Mapping) else {}
    return dict(id=_row_id(row, ("id",), ""), question=_question(row), type=str(meta.get("type", "")),
                golds=_golds(get_field(row, "golden_answers", list, "golden_answers")))  # fmt: skip


def _nq_open(row: Mapping[str, Any]) -> dict[str, Any]:
    return dict(id=_row_id(row, ("id",), ""), question=_question(row), hops=1,
                golds=_golds(get_field(row, "answer", list, "answer")))  # fmt: skip


def _triviaqa(row: Mapping[str, Any]) -> dict[str, Any]:
    answer = get_field(row, "Answer", dict, "Answer")
    return dict(id=_row_id(row, ("QuestionId",), ""), question=_question(row, "Question"), hops=1,
                golds=_golds(answer.get("Value"), answer.get("Aliases", [])))  # fmt: skip


def _hotpot(row: Mapping[str, Any]) -> dict[str, Any]:
    """HotpotQA and 2WikiMultihopQA share the layout; 2Wiki lists its evidence triples (hops)."""
    evidences = row.get("evidences")
    return dict(id=_row_id(row, ("_id", "id"), ""), question=_question(row), type=str(row.get("type", "")),
                hops=len(evidences) if isinstance(evidences, list) and evidences else 2,
                golds=_golds(get_field(row, "answer", str, "answer")))  # fmt: skip


def _musique(row: Mapping[str, Any]) -> dict[str, Any]:
    if row.get("answerable") is False:
        raise RowIssue("unanswerable")
    steps = row.get("question_decomposition")
    return dict(id=_row_id(row, ("id",), ""), question=_question(row),
                hops=len(steps) if isinstance(steps, list) else 0,
                golds=_golds(get_field(row, "answer", str, "answer"), row.get("answer_aliases", [])))  # fmt: skip


def _csv(row: Mapping[str, Any]) -> dict[str, Any]:
    return dict(id=_row_id(row, ("id",), ""), question=_question(row, "Question"),
                golds=_golds(get_field(row, "Answer", str, "Answer")))  # fmt: skip


_PARSERS = {"flashrag": _flashrag, "nq_open": _nq_open, "triviaqa": _triviaqa, "hotpot": _hotpot,
            "musique": _musique, "csv": _csv}  # fmt: skip


def _parser(benchmark: str, split: str, kind: str):
    """A row parser for `collect_rows`: (row number, decoded row) -> QARecord; raises RowIssue."""

    def parse(numbered: tuple[int, Any]) -> QARecord:
        number, row = numbered
        if not isinstance(row, Mapping):
            raise RowIssue(f"row: expected object, got {type_name(row)}")
        fields = _PARSERS[kind](row)
        fields["id"] = fields["id"] or f"{benchmark}-{split}-{number}"
        return QARecord(dataset=benchmark, split=split, data_source=benchmark, **fields)

    return parse


def _kind(benchmark: str, path: str, first: Any) -> str:
    if path.endswith(".csv"):
        return "csv"
    if isinstance(first, Mapping) and "golden_answers" in first:
        return "flashrag"
    if isinstance(first, Mapping) and "Data" in first:
        return "triviaqa"
    if benchmark == "musique":
        return "musique"
    if benchmark in ("hotpotqa", "2wiki"):
        return "hotpot"
    if benchmark == "nq":
        return "nq_open"
    raise DataError(path, None, f"not a known {benchmark} format (see coa_jax.data.tfds.benchmarks)")


def _raw_rows(path: str) -> tuple[Any, Iterator[tuple[int, Any]]]:
    """(first decoded row, numbered rows) of a CSV, JSONL, JSON array or TriviaQA JSON file."""
    if path.endswith(".csv"):
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        return (rows[0] if rows else None), iter(enumerate(rows, start=1))
    if path.endswith(".json"):
        with open(path, "rb") as f:
            head = f.read(4096).lstrip()
        if head.startswith(b"{"):  # TriviaQA: one object holding the rows under "Data"
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
            data = doc.get("Data") if isinstance(doc, Mapping) else None
            if not isinstance(data, list):
                raise DataError(path, None, "expected a JSON array, or an object with a 'Data' list")
            return {"Data": data}, iter(enumerate(data, start=1))
        rows = list(iter_json_rows(path))
    else:
        rows = list(iter_jsonl(path))
    first = next((r for _, r in rows if not isinstance(r, RowIssue)), None)
    return first, iter(rows)


def read_benchmark(benchmark: str, path: str | os.PathLike, split: str | None = None, *,
                   strict: bool = True) -> LoadResult[QARecord]:  # fmt: skip
    """Reads one benchmark file (format detected from the file, see the module docstring).

    Args:
      benchmark: one of BENCHMARKS.
      path: the file.
      split: the split its rows belong to (default: from the file name).
      strict: stop at the first bad row (True) or skip and count bad rows (False).

    Raises:
      ValueError: an unknown benchmark.
      DataError: an unreadable file; strict mode, a bad row.
    """
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; known: {BENCHMARKS}")
    source = os.fspath(path)
    split = split or split_of(source)
    first, rows = _raw_rows(source)
    if first is None:
        return LoadResult(source, ())
    parse = _parser(benchmark, split, _kind(benchmark, source, first))
    # the parser needs the row number too (default ids), so each raw row carries it
    numbered = ((n, raw if isinstance(raw, RowIssue) else (n, raw)) for n, raw in rows)
    return collect_rows(source, numbered, parse, strict=strict)
