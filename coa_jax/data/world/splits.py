"""Assigns candidate questions to train / dev / test so that the no-leakage rules hold.

Owners (rule 2 of `leakage`, chain part): every tail fact gets an owner split the first time a
chosen question uses it; a question may only join the split that owns all of its tail facts, or
owns none of them yet. A question's tail facts here include the tail facts `leakage.entangled`
with its facts (no text can state one without the other), so the owner map also tells the corpus
which passages may state what (rule 3).

Held-out entities. The corpus states a dev or test fact only in passages of that split's level
(`corpus`), titled with its subject and naming its object; such passages come up for searches
about either end, and about entities whose names share a word with theirs (near-namesakes). So
a split *claims* the entities its owned facts link, and a question may not need a tail fact
about an entity claimed by a later split, nor about a near-namesake of one (it would have to
search that name).

Order. Splits are filled test, then dev, then train, taking datasets round-robin. Test and dev
keep the dataset's popular/tail proportion and take, of the usable candidates of the wanted
tier, the one that costs least: first the exposure it adds (`exposure` of the entities it would
newly claim, `fact_exposure` of the tail facts it would newly own), then how often the split
already asks its tail relations (so the relations get asked in turn), then how many entities it
would claim, then how many tail facts it would own (ties: pool order, which is shuffled). So
evaluation questions gather on few entities, preferably ones that little other text names, and
leave most of the world, and most tail facts, to train. Train takes candidates in pool order.
Afterwards, train/dev questions whose text or golds state a tail fact of a later split are
dropped (rule 2, text part).
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Mapping, Sequence

from coa_jax.data.world.leakage import MentionIndex, entangled, question_text
from coa_jax.data.world.names import words
from coa_jax.data.world.schema import DATASETS, SPLITS, SYMMETRIC, Question, World
from coa_jax.data.world.sizes import WorldSize

FILL_ORDER = ("test", "dev", "train")
_NAME_FILLERS = frozenset({"the", "of", "and", "a", "an"})  # name words retrieval ignores
NAME_SHARE_WEIGHT = 4  # exposure of an entity per other entity sharing a word of its names


@dataclasses.dataclass(frozen=True)
class SplitResult:
    questions: tuple[Question, ...]  # ordered by split (SPLITS), dataset (DATASETS), then pick order
    owner: Mapping[str, str]  # tail fact id -> the split whose questions use it
    dropped_for_leakage: int


@dataclasses.dataclass(frozen=True)
class _Candidate:
    question: Question
    tail: tuple[str, ...]  # its tail facts and the tail facts entangled with its facts
    claims: tuple[str, ...]  # the entities those facts link (a split owning them claims these)
    searched: tuple[str, ...]  # subjects of its tail steps (the entities it must search)
    relations: tuple[str, ...]  # relations of its tail steps
    key: tuple  # (dataset, facts, first gold): one question per key
    popular: bool
    claim_exposure: tuple[tuple[str, int], ...]  # (claimed entity, its exposure)
    fact_exposure: tuple[tuple[str, int], ...]  # (tail fact, its exposure)


def namesakes(world: World) -> dict[str, set[str]]:
    """entity id -> the other entities whose names share a word with its names."""
    named: dict[str, set[str]] = collections.defaultdict(set)  # name word -> entities
    for e in world.entities:
        for surface in e.surfaces:
            for w in set(words(surface)) - _NAME_FILLERS:
                named[w].add(e.id)
    return {e.id: set().union(*(named[w] for s in e.surfaces for w in set(words(s)) - _NAME_FILLERS)) - {e.id}
            for e in world.entities}  # fmt: skip


def exposure(world: World) -> dict[str, int]:
    """entity id -> how often text about other entities brings it up: 1 + the facts naming it as
    their object (a marriage: both partners) + `NAME_SHARE_WEIGHT` per other entity sharing a
    word of its names (a search for one finds the other)."""
    out = {e.id: 1 for e in world.entities}
    for f in world.facts:
        if f.object:
            out[f.object] += 1
            if f.relation in SYMMETRIC:
                out[f.subject] += 1
    for e, sharing in namesakes(world).items():
        out[e] += NAME_SHARE_WEIGHT * len(sharing)
    return out


class _Picker:
    def __init__(self, pools: Mapping[str, Sequence[Question]], world: World):
        self.tier = {f.id: f.tier for f in world.facts}
        self.exposure = exposure(world)
        self.fact_exposure = fact_exposure(world)
        about = {f.id: (f.subject, f.object) if f.object else (f.subject,) for f in world.facts}
        partners = entangled(world)

        def candidate(q: Question) -> _Candidate:
            linked = (g for f in q.facts for g in (f, *partners.get(f, ())))
            tail = tuple(dict.fromkeys(g for g in linked if self.tier[g] == "tail"))
            claims = tuple(dict.fromkeys(e for f in tail for e in about[f]))
            searched = tuple(dict.fromkeys(s.subject for s in q.steps if self.tier[s.fact] == "tail"))
            relations = tuple(s.relation for s in q.steps if self.tier[s.fact] == "tail")
            key = (q.dataset, tuple(sorted(q.facts)), q.golds[0])
            return _Candidate(q, tail, claims, searched, relations, key, q.tier == "popular",
                              tuple((e, self.exposure[e]) for e in claims),
                              tuple((f, self.fact_exposure[f]) for f in tail))  # fmt: skip

        self.remaining = {d: [candidate(q) for q in pools.get(d, ())] for d in DATASETS}
        self.popular_share = {d: sum(c.question.tier == "popular" for c in p) / max(1, len(p))
                              for d, p in self.remaining.items()}  # fmt: skip
        self.owner: dict[str, str] = {}
        self.claimed: dict[str, set[str]] = {s: set() for s in SPLITS}
        self.shadowed: dict[str, set[str]] = {s: set() for s in SPLITS}  # claimed and their near-namesakes
        self.namesakes = namesakes(world)
        self.asked: dict[str, collections.Counter[str]] = {s: collections.Counter() for s in SPLITS}
        self.seen: set[tuple] = set()
        self.cursor = {d: 0 for d in DATASETS}  # train: candidates before it are used up
        self.texts: set[str] = set()  # question texts are unique across all datasets and splits

    def _usable(self, c: _Candidate, split: str) -> bool:
        later = SPLITS[SPLITS.index(split) + 1 :]
        return (c.key not in self.seen and c.question.question not in self.texts
                and all(self.owner.get(f, split) == split for f in c.tail)
                and not any(e in self.shadowed[s] for e in c.searched for s in later))  # fmt: skip

    def _exposed(self, c: _Candidate, split: str, bound: float = float("inf")) -> float:
        """Exposure of the entities `c` newly claims and of the tail facts it newly owns (stops
        counting above `bound`)."""
        claimed, owner, total = self.claimed[split], self.owner, 0
        for e, x in c.claim_exposure:
            if e not in claimed:
                total += x
                if total > bound:
                    return total
        for f, x in c.fact_exposure:
            if f not in owner:
                total += x
                if total > bound:
                    return total
        return total

    def _cost(self, c: _Candidate, split: str) -> tuple[int, int, int, int]:
        """(`_exposed`, the most the split already asks one of its tail relations, how many
        entities it newly claims, tail facts newly owned)."""
        asked = max((self.asked[split][r] for r in c.relations), default=0)
        new = sum(e not in self.claimed[split] for e in c.claims)
        return self._exposed(c, split), asked, new, sum(f not in self.owner for f in c.tail)

    def pick(self, dataset: str, split: str, taken: Sequence[Question]) -> Question | None:
        pool = self.remaining[dataset]
        best_i, best_cost = -1, None
        if split == "train":
            # train comes last: a candidate unusable now stays unusable, so skip past it for good
            while self.cursor[dataset] < len(pool) and not self._usable(pool[self.cursor[dataset]], split):
                self.cursor[dataset] += 1
            best_i = self.cursor[dataset] if self.cursor[dataset] < len(pool) else -1
        else:
            want_popular = sum(q.tier == "popular" for q in taken) < self.popular_share[dataset] * (len(taken) + 1)
            for i, c in enumerate(pool):
                if c.popular != want_popular:
                    continue
                if best_cost is not None and self._exposed(c, split, best_cost[0]) > best_cost[0]:
                    continue  # cannot be cheaper (the cheap part of the cost first)
                cost = self._cost(c, split)
                if (best_cost is None or cost < best_cost) and self._usable(c, split):
                    best_i, best_cost = i, cost
                    if cost == (0, 0, 0, 0):
                        break
            if best_i < 0:  # nothing of the wanted tier left: take the other tier
                best_i = next((i for i, c in enumerate(pool) if self._usable(c, split)), -1)
        if best_i < 0:
            return None
        c = pool.pop(best_i)
        self.seen.add(c.key)
        self.texts.add(c.question.question)
        for f in c.tail:
            self.owner.setdefault(f, split)
        self.asked[split].update(c.relations)
        if split != "train":
            self.claimed[split].update(c.claims)
            self.shadowed[split].update(c.claims, *(self.namesakes[e] for e in c.claims))
        return c.question


def fact_exposure(world: World) -> dict[str, int]:
    """fact id -> how often text brings up the fact's two ends together without stating it. A
    literal value (a year, a number, a profession): (1 + facts naming the subject as object) x
    (other facts with the same value), as a profession shared by many people is named
    everywhere. An entity: `NAME_SHARE_WEIGHT` x the entities linked to both ends (text about
    such a neighbour names both)."""
    named = collections.Counter(f.object for f in world.facts if f.object)
    values = collections.Counter(f.value for f in world.facts if not f.object)
    linked: dict[str, set[str]] = collections.defaultdict(set)
    for f in world.facts:
        if f.object:
            linked[f.subject].add(f.object)
            linked[f.object].add(f.subject)
    out = {}
    for f in world.facts:
        if f.object:
            out[f.id] = NAME_SHARE_WEIGHT * len((linked[f.subject] & linked[f.object]) - {f.subject, f.object})
        else:
            out[f.id] = (1 + named[f.subject]) * (values[f.value] - 1)
    return out


def assign_splits(pools: Mapping[str, Sequence[Question]], world: World, size: WorldSize) -> SplitResult:
    """Chooses questions per (dataset, split) up to `size.quota`; see the module docstring."""
    picker = _Picker(pools, world)
    chosen: dict[tuple[str, str], list[Question]] = {(d, s): [] for d in DATASETS for s in SPLITS}
    for split in FILL_ORDER:
        live = [d for d in DATASETS if size.quota(d, split) > 0]
        while live:
            for dataset in list(live):
                taken = chosen[(dataset, split)]
                q = picker.pick(dataset, split, taken) if len(taken) < size.quota(dataset, split) else None
                if q is None:
                    live.remove(dataset)
                else:
                    taken.append(q)

    index = MentionIndex(world)
    rank = {s: i for i, s in enumerate(SPLITS)}
    dropped = 0
    ordered: list[Question] = []
    for split in SPLITS:
        for dataset in DATASETS:
            n = 0
            for q in chosen[(dataset, split)]:
                stated = index.stated_facts(question_text(q))
                if any(rank[picker.owner.get(f, split)] > rank[split] for f in stated if picker.tier[f] == "tail"):
                    dropped += 1
                    continue
                n += 1
                ordered.append(dataclasses.replace(q, id=f"{dataset}-{split}-{n:04d}", split=split))
    return SplitResult(questions=tuple(ordered), owner=dict(picker.owner), dropped_for_leakage=dropped)
