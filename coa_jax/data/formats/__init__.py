"""Readers and writers for the reference data formats (SPEC.md 2.2).

Every reader has a strict mode (default: stop at the first bad row with a `DataError` that names
the file, the 1-based row and the reason) and a lenient mode (skip bad rows, count them per reason
in `LoadResult.skipped`). Writers produce files their readers load back unchanged.
"""

from coa_jax.data.formats.contrastive import (
    ContrastivePair,
    Turn,
    read_contrastive_json,
    write_contrastive_json,
)
from coa_jax.data.formats.errors import DataError, LoadResult
from coa_jax.data.formats.messages import (
    Conversation,
    Message,
    read_messages_jsonl,
    write_messages_jsonl,
)
from coa_jax.data.formats.verl_parquet import (
    QAPrompt,
    extract_question,
    read_verl_parquet,
    resolve_dataset,
    write_verl_parquet,
)

__all__ = [
    "ContrastivePair",
    "Conversation",
    "DataError",
    "LoadResult",
    "Message",
    "QAPrompt",
    "Turn",
    "extract_question",
    "read_contrastive_json",
    "read_messages_jsonl",
    "read_verl_parquet",
    "resolve_dataset",
    "write_contrastive_json",
    "write_messages_jsonl",
    "write_verl_parquet",
]
