"""The embedded world's data model: entities, facts, passages, questions (typed, frozen).

Entity kinds and the relations between them (subject -> object):

  country.capital -> city        city.country -> country       city.population -> number
  person.occupation -> role      person.birth_year -> year     person.born_in -> city
  person.educated_at -> org      person.spouse -> person (symmetric, stored once)
  org.founded_by -> person       org.founded_year -> year      org.headquarters -> city
  work.creator -> person         work.year -> year             work.publisher -> org

Every fact has a tier: "popular" (also stated in the pretraining text) or "tail" (only in the
search corpus).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

KINDS = ("country", "city", "person", "org", "work")
ORG_KINDS = ("publisher", "studio", "label", "university")
WORK_KINDS = ("novel", "film", "album")
# which organisation kind releases which work kind
PUBLISHER_OF = {"novel": "publisher", "film": "studio", "album": "label"}
RELATIONS = (
    "capital", "country", "population",
    "occupation", "birth_year", "born_in", "educated_at", "spouse",
    "founded_by", "founded_year", "headquarters",
    "creator", "year", "publisher",
)  # fmt: skip
SYMMETRIC = frozenset({"spouse"})
TIERS = ("popular", "tail")
DATASETS = ("nq", "triviaqa", "hotpotqa", "2wiki", "musique", "bamboogle")
SPLITS = ("train", "dev", "test")


@dataclasses.dataclass(frozen=True)
class Entity:
    """A thing with a name (and aliases, all gold answers). `subkind`: org or work kind."""

    id: str
    kind: str
    name: str
    aliases: tuple[str, ...] = ()
    subkind: str = ""
    famous: bool = False

    @property
    def surfaces(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclasses.dataclass(frozen=True)
class Fact:
    """(subject, relation, object). `value` is the object's text; `object` its entity id, or ""
    for a literal (year, number, occupation)."""

    id: str
    subject: str
    relation: str
    value: str
    object: str = ""
    tier: str = "tail"


@dataclasses.dataclass(frozen=True)
class World:
    """Entities and facts, with lookups. Order of both tuples is the generation order."""

    entities: tuple[Entity, ...]
    facts: tuple[Fact, ...]

    @functools.cached_property
    def by_id(self) -> Mapping[str, Entity]:
        return {e.id: e for e in self.entities}

    @functools.cached_property
    def fact_by_id(self) -> Mapping[str, Fact]:
        return {f.id: f for f in self.facts}

    @functools.cached_property
    def _out(self) -> Mapping[tuple[str, str], Fact]:
        table: dict[tuple[str, str], Fact] = {}
        for f in self.facts:
            table[(f.subject, f.relation)] = f
            if f.relation in SYMMETRIC:
                table[(f.object, f.relation)] = f
        return table

    def lookup(self, entity_id: str, relation: str) -> Fact | None:
        """The fact giving `relation` of `entity_id` (either side of a symmetric relation)."""
        return self._out.get((entity_id, relation))

    def target(self, fact: Fact, from_id: str) -> str:
        """The entity a step along `fact` from `from_id` arrives at ("" for a literal)."""
        if fact.relation in SYMMETRIC and fact.object == from_id:
            return fact.subject
        return fact.object

    def of_kind(self, kind: str, subkind: str | None = None) -> tuple[Entity, ...]:
        return tuple(e for e in self.entities if e.kind == kind and (subkind is None or e.subkind == subkind))


@dataclasses.dataclass(frozen=True)
class Passage:
    """One corpus document (FlashRAG style): contents = '"title"\\n' + text."""

    id: str
    title: str
    text: str
    entity: str

    @property
    def contents(self) -> str:
        return f'"{self.title}"\n{self.text}'

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "title": self.title, "contents": self.contents}


@dataclasses.dataclass(frozen=True)
class ChainStep:
    """One fact a question needs: from entity `subject` along `relation` to `value`.

    `branch` separates the two sides of a comparison (0 for a plain chain). `query` is a search
    query that finds the fact; `passage` the corpus passage that states it.
    """

    fact: str
    subject: str
    relation: str
    value: str
    object: str
    query: str
    passage: str
    branch: int = 0


@dataclasses.dataclass(frozen=True)
class Question:
    """A question with its gold answers and the chain of facts that answers it.

    type: single | bridge | comparison | compositional | bridge_comparison | chain | hard.
    operation: how the steps give the answer: lookup (the last step's value), earlier / later
      (the compared entity with the smaller / larger year), larger (larger number), same (yes if
      both branches end at the same value, else no).
    hops: number of facts (= searches needed when none is known).
    tier: popular if every fact used is popular, else tail.
    """

    id: str
    question: str
    golds: tuple[str, ...]
    dataset: str
    split: str
    type: str
    operation: str
    hops: int
    tier: str
    steps: tuple[ChainStep, ...]
    passages: tuple[str, ...]

    @property
    def facts(self) -> tuple[str, ...]:
        return tuple(s.fact for s in self.steps)

    def to_json(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        row["golds"] = list(self.golds)
        row["passages"] = list(self.passages)
        row["steps"] = [dataclasses.asdict(s) for s in self.steps]
        return row

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> Question:
        fields = {k: row[k] for k in (f.name for f in dataclasses.fields(cls))}
        fields["golds"] = tuple(row["golds"])
        fields["passages"] = tuple(row["passages"])
        fields["steps"] = tuple(ChainStep(**s) for s in row["steps"])
        return cls(**fields)
