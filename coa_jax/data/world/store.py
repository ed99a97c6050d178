"""Reads a built world directory back (for teachers, training and evaluation).

    world = load_world("runs/world")
    world.questions("train", dataset="hotpotqa")   # tuple[Question, ...] with chains of facts
    world.passage("12").contents                   # the corpus row the search tool returns
    world.fact("fact-00042").tier                  # popular / tail
    world.owner.get("fact-00042", "")              # the split owning a tail fact ("" if none)
    world.later_facts("train")                     # tail facts train text must not state
    world.tokenizer_dir                            # for transformers.AutoTokenizer
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Mapping

from coa_jax.data.formats.errors import DataError
from coa_jax.data.formats.jsonfile import iter_jsonl
from coa_jax.data.world.leakage import later_facts
from coa_jax.data.world.schema import SPLITS, Entity, Fact, Passage, Question


def _rows(path: str) -> list[dict]:
    rows = []
    for number, row in iter_jsonl(path):
        if isinstance(row, Exception):
            raise DataError(path, number, str(row))
        rows.append(row)
    return rows


@dataclasses.dataclass(frozen=True)
class WorldFiles:
    """A built world on disk, loaded. Lookups by id; questions per split."""

    root: str
    entities: tuple[Entity, ...]
    facts: tuple[Fact, ...]
    passages: tuple[Passage, ...]
    pretrain: tuple[str, ...]
    splits: Mapping[str, tuple[Question, ...]]
    fact_passages: Mapping[str, tuple[str, ...]]
    stats: Mapping[str, object]
    owner: Mapping[str, str] = dataclasses.field(default_factory=dict)  # tail fact id -> owner split

    def later_facts(self, split: str) -> frozenset[str]:
        """The tail facts owned by splits ranked above `split` (text for `split` must not state them)."""
        return later_facts(self.owner, split)

    @property
    def tokenizer_dir(self) -> str:
        return os.path.join(self.root, "tokenizer")

    @property
    def corpus_path(self) -> str:
        return os.path.join(self.root, "corpus.jsonl")

    def questions(self, split: str, dataset: str | None = None) -> tuple[Question, ...]:
        return tuple(q for q in self.splits[split] if dataset is None or q.dataset == dataset)

    def parquet_path(self, split: str) -> str:
        """The split as verl prompt rows (read with `coa_jax.data.formats.read_verl_parquet`)."""
        return os.path.join(self.root, "questions", f"{split}.parquet")

    @functools.cached_property
    def _entity(self) -> Mapping[str, Entity]:
        return {e.id: e for e in self.entities}

    @functools.cached_property
    def _fact(self) -> Mapping[str, Fact]:
        return {f.id: f for f in self.facts}

    def entity(self, entity_id: str) -> Entity:
        return self._entity[entity_id]

    def fact(self, fact_id: str) -> Fact:
        return self._fact[fact_id]

    def passage(self, passage_id: str) -> Passage:
        return self.passages[int(passage_id)]


def load_world(root: str | os.PathLike) -> WorldFiles:
    """Loads a directory written by `build_world`.

    Raises:
      DataError: a file is missing a row's fields or is not valid JSON Lines.
    """
    root = os.fspath(root)
    entity_rows = _rows(os.path.join(root, "entities.jsonl"))
    entities = tuple(Entity(r["id"], r["kind"], r["name"], tuple(r["aliases"]), r["subkind"], r["famous"])
                     for r in entity_rows)  # fmt: skip
    fact_rows = _rows(os.path.join(root, "facts.jsonl"))
    facts = tuple(Fact(r["id"], r["subject"], r["relation"], r["value"], r["object"], r["tier"]) for r in fact_rows)
    owner = {p: r["id"] for r in entity_rows for p in r["passages"]}
    passages = []
    for r in _rows(os.path.join(root, "corpus.jsonl")):
        text = r["contents"].partition("\n")[2]
        passages.append(Passage(r["id"], r["title"], text, owner[r["id"]]))
    with open(os.path.join(root, "pretrain.txt"), encoding="utf-8") as f:
        pretrain = tuple(line.rstrip("\n") for line in f)
    splits = {s: tuple(Question.from_json(r) for r in _rows(os.path.join(root, "questions", f"{s}.jsonl")))
              for s in SPLITS}  # fmt: skip
    with open(os.path.join(root, "stats.json"), encoding="utf-8") as f:
        stats = json.load(f)
    return WorldFiles(root, entities, facts, tuple(passages), pretrain, splits,
                      {r["id"]: tuple(r["passages"]) for r in fact_rows}, stats,
                      {r["id"]: r["split"] for r in fact_rows if r.get("split")})  # fmt: skip
