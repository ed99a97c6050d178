"""Assigns candidate questions to train / dev / test so that the no-leakage rules hold.

Construction (rule 2 of `leakage`, chain part): every tail fact gets an owner split the first
time a chosen question uses it; a question may only join the split that owns all of its tail
facts, or owns none of them yet. Splits are filled test, then dev, then train, taking datasets
round-robin. Test and dev keep the dataset's popular/tail proportion and a budget of tail facts
(`FACT_BUDGET`, a share of all tail facts, spent in step with the split's progress): the next
usable candidate of the wanted tier is taken if the new tail facts it needs fit the budget so far,
else the candidate needing the fewest new ones among the next `PACKING_WINDOW`. So evaluation
questions leave most tail facts to train. Afterwards, train/dev questions whose text or golds state a tail fact of a
later split are dropped (rule 2, text part).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from coa_jax.data.world.leakage import MentionIndex, question_text
from coa_jax.data.world.schema import DATASETS, SPLITS, Question, World
from coa_jax.data.world.sizes import WorldSize

FILL_ORDER = ("test", "dev", "train")
PACKING_WINDOW = 200  # candidates looked at per pick for test and dev
FACT_BUDGET = {"test": 0.2, "dev": 0.08}  # share of the tail facts test / dev may use


@dataclasses.dataclass(frozen=True)
class SplitResult:
    questions: tuple[Question, ...]  # ordered by split (SPLITS), dataset (DATASETS), then pick order
    owner: Mapping[str, str]  # tail fact id -> the split whose questions use it
    dropped_for_leakage: int


@dataclasses.dataclass(frozen=True)
class _Candidate:
    question: Question
    tail: tuple[str, ...]  # its tail facts
    key: tuple  # (dataset, facts, first gold): one question per key


class _Picker:
    def __init__(self, pools: Mapping[str, Sequence[Question]], world: World, size: WorldSize):
        self.tier = {f.id: f.tier for f in world.facts}
        n_tail = sum(t == "tail" for t in self.tier.values())
        self.budget = {s: share * n_tail for s, share in FACT_BUDGET.items()}
        self.quota = {s: sum(size.quota(d, s) for d in DATASETS) for s in FILL_ORDER}
        self.picked = {s: 0 for s in FILL_ORDER}
        self.owned = {s: 0 for s in FILL_ORDER}
        self.remaining = {
            d: [_Candidate(q, tuple(f for f in q.facts if self.tier[f] == "tail"),
                           (q.dataset, tuple(sorted(q.facts)), q.golds[0])) for q in pools.get(d, ())]
            for d in DATASETS
        }  # fmt: skip
        self.popular_share = {d: sum(not c.tail for c in p) / max(1, len(p)) for d, p in self.remaining.items()}
        self.owner: dict[str, str] = {}
        self.seen: set[tuple] = set()
        self.cursor = {d: 0 for d in DATASETS}  # train: candidates before it are used up
        self.texts: set[str] = set()  # question texts are unique across all datasets and splits

    def _usable(self, c: _Candidate, split: str) -> bool:
        return (c.key not in self.seen and c.question.question not in self.texts
                and all(self.owner.get(f, split) == split for f in c.tail))  # fmt: skip

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
            progress = (self.picked[split] + 1) / self.quota[split]
            allowance = self.budget[split] * progress - self.owned[split]
            looked = 0
            for i, c in enumerate(pool):
                if (not c.tail) != want_popular or not self._usable(c, split):
                    continue
                cost = sum(f not in self.owner for f in c.tail)
                if cost <= allowance:
                    best_i = i
                    break
                if best_cost is None or cost < best_cost:
                    best_i, best_cost = i, cost
                looked += 1
                if looked >= PACKING_WINDOW:
                    break
            if best_i < 0:  # nothing of the wanted tier left: take the other tier
                best_i = next((i for i, c in enumerate(pool) if self._usable(c, split)), -1)
        if best_i < 0:
            return None
        c = pool.pop(best_i)
        self.seen.add(c.key)
        self.texts.add(c.question.question)
        self.picked[split] += 1
        for f in c.tail:
            if f not in self.owner:
                self.owner[f] = split
                self.owned[split] += 1
        return c.question


def assign_splits(pools: Mapping[str, Sequence[Question]], world: World, size: WorldSize) -> SplitResult:
    """Chooses questions per (dataset, split) up to `size.quota`; see the module docstring."""
    picker = _Picker(pools, world, size)
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
