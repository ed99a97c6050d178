"""What the scripted teacher knows without searching, and how it guesses what it does not.

The teacher stands in for a large reasoning model: it knows the world's *popular* facts (the
ones its pretraining text states, `pretrain.txt`) and nothing of the *tail* facts (only in the
search corpus). Asked for a tail fact without a tool it does what such models do: it states a
plausible wrong value with confidence, here the same relation's value of another entity
(another person's birth year, another city). A guess depends only on the seed and the fact, so
the teacher's belief about a fact is the same in every trajectory.
"""

from __future__ import annotations

import dataclasses
import functools
import random
from collections.abc import Mapping

from coa_jax.data.world import templates as T
from coa_jax.data.world.corpus import words_for
from coa_jax.data.world.schema import Entity, World
from coa_jax.data.world.store import WorldFiles

# relations whose value is an entity (the next hop of a chain starts there)
ENTITY_RELATIONS = frozenset({"capital", "country", "born_in", "educated_at", "spouse", "founded_by",
                              "headquarters", "creator", "publisher"})  # fmt: skip


@dataclasses.dataclass(frozen=True)
class TeacherWorld:
    """A loaded world seen by the teacher: names, its memory of popular facts, guesses."""

    files: WorldFiles
    seed: int = 0

    @functools.cached_property
    def world(self) -> World:
        return World(entities=self.files.entities, facts=self.files.facts)

    @functools.cached_property
    def _by_name(self) -> Mapping[str, Entity]:
        table = {}
        for e in self.files.entities:
            for surface in e.surfaces:
                table.setdefault(surface, e)
        return table

    def entity_named(self, name: str) -> Entity | None:
        """The entity with this name or alias (None for text that names nothing)."""
        return self._by_name.get(name)

    def value_of(self, entity: Entity, relation: str) -> str | None:
        """The true value (entity name or literal) of `relation` for `entity`, if it has one."""
        fact = self.world.lookup(entity.id, relation)
        if fact is None:
            return None
        target = self.world.target(fact, entity.id)
        return self.world.by_id[target].name if target else fact.value

    def known(self, entity: Entity, relation: str) -> str | None:
        """The value if the fact is popular (the teacher knows it), else None."""
        fact = self.world.lookup(entity.id, relation)
        if fact is None or fact.tier != "popular":
            return None
        return self.value_of(entity, relation)

    @functools.cached_property
    def _values(self) -> Mapping[str, tuple[str, ...]]:
        """relation -> every distinct value it takes in the world, sorted."""
        out: dict[str, set[str]] = {}
        for e in self.files.entities:
            for relation in T.QUERY:
                value = self.value_of(e, relation)
                if value is not None:
                    out.setdefault(relation, set()).add(value)
        return {r: tuple(sorted(v)) for r, v in out.items()}

    def relation_values(self, relation: str) -> tuple[str, ...]:
        """Every distinct value `relation` takes in the world (sorted)."""
        return self._values.get(relation, ())

    def guess(self, entity: Entity, relation: str) -> str:
        """A plausible wrong value: the same relation's value of another entity."""
        truth = self.value_of(entity, relation)
        pool = [v for v in self.relation_values(relation) if v not in (truth, entity.name)]
        if not pool:  # a relation with a single value in the whole world
            return truth or ""
        return random.Random(f"{self.seed}/guess/{entity.id}/{relation}").choice(pool)

    def recall(self, entity: Entity, relation: str) -> tuple[str, bool]:
        """What the teacher believes without searching: (value, whether it really knows it)."""
        value = self.known(entity, relation)
        return (value, True) if value is not None else (self.guess(entity, relation), False)

    def words(self, entity: Entity) -> dict[str, str]:
        """Template words for `entity` (work words, organisation kind, tense)."""
        return words_for(self.world, entity)
