"""Evaluation questions from the formats in use, as one typed list.

Accepted sources:
  * a verl parquet prompt file (the reference's `eval_test.parquet`, the embedded world's
    `questions/SPLIT.parquet`): read with `coa_jax.data.formats.read_verl_parquet`;
  * the embedded world's `questions/SPLIT.jsonl` (its prompt is rebuilt with the world's
    instruction), or a built world directory (its `questions/<split>.parquet`);
  * a TFDS dataset name (`tensorflow_datasets.data_source(name, split=...)`) whose rows carry
    `question` and `answer`/`answers`.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from collections.abc import Sequence

from coa_jax.data.formats import QAPrompt, read_verl_parquet
from coa_jax.data.formats.messages import Message


@dataclasses.dataclass(frozen=True)
class EvalItem:
    """One question: its id, benchmark, chat messages, question text and gold answers; `tier`
    says whether the base model could know its facts ("popular": in its training text, "tail":
    only in the search corpus; "" when the source does not say, as for real benchmarks)."""

    id: str
    dataset: str
    messages: tuple[Message, ...]
    question: str
    golds: tuple[str, ...]
    tier: str = ""


def _from_prompt(p: QAPrompt) -> EvalItem:
    return EvalItem(p.id, p.dataset, tuple(p.prompt), p.question, tuple(p.golds), str(p.extra.get("tier") or ""))


def _from_world_jsonl(path: str) -> list[EvalItem]:
    from coa_jax.data.formats.jsonfile import iter_jsonl
    from coa_jax.data.world.prompt import to_qa_prompt
    from coa_jax.data.world.schema import Question

    items = []
    for number, row in iter_jsonl(path):
        if isinstance(row, Exception):
            raise ValueError(f"{path} row {number}: {row}")
        items.append(_from_prompt(to_qa_prompt(Question.from_json(row), number - 1)))
    return items


def _from_tfds(name: str, split: str) -> list[EvalItem]:
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise FileNotFoundError(f"{name!r} is not a file, and tensorflow_datasets is not importable") from error
    source = tfds.data_source(name, split=split)
    items = []
    for i, row in enumerate(source):
        question = row["question"].decode() if isinstance(row["question"], bytes) else str(row["question"])
        answers = row.get("answers", row.get("answer"))
        answers = [answers] if isinstance(answers, (str, bytes)) else list(answers)
        golds = tuple(a.decode() if isinstance(a, bytes) else str(a) for a in answers)
        items.append(EvalItem(f"{split}-{i}", name.split("/")[0], (Message("user", question),), question, golds))
    return items


def load_eval_items(source: str, *, split: str = "test", limit: int | None = None) -> list[EvalItem]:
    """Questions from `source` (see the module docstring).

    Args:
      source: a file, a world directory or a TFDS name.
      split: the split of a world directory or TFDS dataset.
      limit: keep the first `limit` questions of every benchmark (dataset) in the source.

    Raises:
      FileNotFoundError: nothing readable at `source`.
      coa_jax.data.formats.DataError: a malformed file.
    """
    if os.path.isdir(source):
        source = os.path.join(source, "questions", f"{split}.parquet")
        if not os.path.isfile(source):
            raise FileNotFoundError(f"no {split} questions at {source}")
    if source.endswith(".parquet"):
        items = [_from_prompt(p) for p in read_verl_parquet(source).rows]
    elif source.endswith(".jsonl"):
        items = _from_world_jsonl(source)
    elif os.path.exists(source):
        raise FileNotFoundError(f"{source}: expected a .parquet or world .jsonl file or a world directory")
    else:
        items = _from_tfds(source, split)
    if limit is not None:
        seen: collections.Counter = collections.Counter()
        kept = []
        for item in items:
            seen[item.dataset] += 1
            if seen[item.dataset] <= limit:
                kept.append(item)
        items = kept
    return items


def prompt_ids(tokenizer, messages: Sequence[Message]) -> list[int]:
    """Token ids of the chat prompt (the tokenizer's chat template with a generation prompt; plain
    concatenation of the contents when it has none)."""
    chat = [{"role": m.role, "content": m.content} for m in messages]
    if tokenizer.chat_template:
        ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True)
        if not isinstance(ids, list):  # a BatchEncoding in newer transformers
            ids = ids["input_ids"]
        return [int(i) for i in ids]
    return list(tokenizer.encode("\n\n".join(m.content for m in messages) + "\n", add_special_tokens=False))
