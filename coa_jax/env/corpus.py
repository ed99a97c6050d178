"""FlashRAG-style retrieval corpora: `corpus.jsonl`, one `{"id", "title", "contents"}` row a line.

By FlashRAG's convention `contents` is `"Title"\\nText`; it is indexed and shown to the model as is
(the reference renders `contents` verbatim). A row with `title` and `text` but no `contents` gets
`contents = '"' + title + '"\\n' + text`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from typing import Any, Mapping


@dataclasses.dataclass(frozen=True)
class Document:
    """One passage. `contents` is what is indexed and shown."""

    id: str
    title: str
    contents: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "title": self.title, "contents": self.contents}


@dataclasses.dataclass(frozen=True)
class Hit:
    """A retrieved document and its score (nan when the server sent none)."""

    doc: Document
    score: float


@dataclasses.dataclass(frozen=True)
class RetrievalFailure:
    """A query the backend could not answer, and why."""

    reason: str


def title_of(contents: str) -> str:
    """The FlashRAG title: the first line of `contents` without its quotes."""
    return contents.split("\n", 1)[0].strip().strip('"')


def document_from_json(row: Mapping[str, Any], where: str = "row") -> Document:
    """A `Document` from a corpus row or a server's document object.

    Raises:
      ValueError: the row is not an object, or has neither `contents` nor `title`+`text`.
    """
    if not isinstance(row, Mapping):
        raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
    contents = row.get("contents")
    if contents is None and isinstance(row.get("text"), str):
        contents = f'"{row.get("title", "")}"\n{row["text"]}'
    if not isinstance(contents, str):
        raise ValueError(f"{where}: needs a string 'contents' (or 'title' and 'text'), got keys {sorted(row)}")
    title = row.get("title")
    if not isinstance(title, str):
        title = title_of(contents)
    doc_id = row.get("id", "")
    return Document(id=str(doc_id), title=title, contents=contents)


def load_corpus(path: str | os.PathLike) -> tuple[list[Document], str]:
    """Reads a corpus file.

    Args:
      path: a `.jsonl` file, one document object a line (blank lines skipped).

    Returns:
      (documents in file order, sha256 hex digest of the file's bytes).

    Raises:
      FileNotFoundError: no such file.
      ValueError: a line is not valid JSON or not a document (the line number is named), or the
        corpus is empty.
    """
    path = os.fspath(path)
    digest = hashlib.sha256()
    docs: list[Document] = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            digest.update(raw)
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except ValueError as e:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({e})") from None
            docs.append(document_from_json(row, f"{path}:{lineno}"))
    if not docs:
        raise ValueError(f"{path}: the corpus is empty")
    return docs, digest.hexdigest()


def score_or_nan(value: Any) -> float:
    """A JSON score as float (nan when missing or not a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)
