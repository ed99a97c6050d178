"""What it means for text to *state* a fact, and the checks built on it.

A text states fact (s, r, o) when it mentions the subject s and the object o: some surface form
(name or alias) of each, or the literal value for o, occurs in it as a whole word sequence
(case-insensitive, punctuation ignored; names are unique as word sequences, see `names`).

No-leakage rules (checked by `question_leaks`, `pretrain_leaks` and `corpus_leaks`):
1. Pretraining text states no tail fact.
2. Splits are ranked train < dev < test. For a tail fact used by a question of some split, no
   question of a lower-ranked split uses it in its chain, nor states it in its question text or
   gold answers. (So nothing a dev question needs from the corpus is given away by train
   questions, and nothing a test question needs by train or dev questions.)
3. Every tail fact has at most one *owner* split (`splits.SplitResult.owner`, written to
   facts.jsonl as "split"); facts between the same two entities share it (`entangled`: a text
   stating one states the others). Each corpus passage has a level (a split); it states no tail
   fact owned by a split ranked above its level, and the passages a question lists are of its
   split's level or lower. So what a train question reads, its search results included when
   they are train-level passages, gives no dev or test fact away. Text written from train
   questions (teacher trajectories) is held to the same rule: `later_facts(owner, "train")` are
   the facts it must not state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from coa_jax.data.world.names import words
from coa_jax.data.world.schema import SPLITS, Fact, Question, World

_RANK = {split: i for i, split in enumerate(SPLITS)}


class MentionIndex:
    """Finds which entities and which facts a text mentions / states."""

    def __init__(self, world: World):
        self.world = world
        self._surface_owner: dict[tuple[str, ...], str] = {}
        for e in world.entities:
            for s in e.surfaces:
                self._surface_owner[words(s)] = e.id
        self._longest = max(len(k) for k in self._surface_owner)
        self._about: dict[str, list[Fact]] = {}  # entity id -> facts with it as subject (either side if symmetric)
        for f in world.facts:
            self._about.setdefault(f.subject, []).append(f)
            if f.relation == "spouse":
                self._about.setdefault(f.object, []).append(f)

    def _runs(self, text: str) -> set[tuple[str, ...]]:
        toks = words(text)
        return {toks[i:j] for i in range(len(toks)) for j in range(i + 1, min(len(toks), i + self._longest) + 1)}

    def entities(self, text: str) -> set[str]:
        """Ids of the entities some surface of which occurs in `text`."""
        return {self._surface_owner[r] for r in self._runs(text) if r in self._surface_owner}

    def stated_facts(self, text: str) -> set[str]:
        """Ids of the facts `text` states (subject and object both mentioned)."""
        runs = self._runs(text)
        present = {self._surface_owner[r] for r in runs if r in self._surface_owner}
        stated = set()
        for entity_id in present:
            for f in self._about.get(entity_id, ()):
                other = f.object if f.subject == entity_id else f.subject
                if (other in present) if other else (words(f.value) in runs):
                    stated.add(f.id)
        return stated


def question_text(q: Question) -> str:
    """What a question shows a learner: its text and its gold answers."""
    return "\n".join((q.question, *q.golds))


def question_leaks(questions: Sequence[Question], world: World, index: MentionIndex | None = None) -> list[str]:
    """Violations of rule 2, one line each ("" list when clean)."""
    index = index or MentionIndex(world)
    tail = {f.id for f in world.facts if f.tier == "tail"}
    used: dict[str, set[str]] = {s: set() for s in SPLITS}
    for q in questions:
        used[q.split].update(f for f in q.facts if f in tail)
    problems = []
    for q in questions:
        later = set().union(*(used[s] for s in SPLITS if _RANK[s] > _RANK[q.split]))
        for f in sorted(later.intersection(q.facts)):
            problems.append(f"{q.id} ({q.split}) uses {f}, a tail fact of a later split")
        for f in sorted(later.intersection(index.stated_facts(question_text(q)))):
            problems.append(f"{q.id} ({q.split}) states {f}, a tail fact of a later split")
    return problems


def pretrain_leaks(lines: Iterable[str], world: World, index: MentionIndex | None = None) -> list[str]:
    """Violations of rule 1: pretraining lines that state a tail fact."""
    index = index or MentionIndex(world)
    tail = {f.id for f in world.facts if f.tier == "tail"}
    return [f"line {n}: states {sorted(tail & index.stated_facts(line))}: {line}"
            for n, line in enumerate(lines, start=1) if tail & index.stated_facts(line)]  # fmt: skip


def entangled(world: World) -> dict[str, tuple[str, ...]]:
    """fact id -> the other facts between the same two entities (a country's capital and that
    city's country; a university's founder who studied there). Only facts with partners."""
    by_pair: dict[frozenset[str], list[str]] = {}
    for f in world.facts:
        if f.object:
            by_pair.setdefault(frozenset((f.subject, f.object)), []).append(f.id)
    return {f: tuple(g for g in group if g != f) for group in by_pair.values() if len(group) > 1 for f in group}


def later_facts(owner: Mapping[str, str], split: str) -> frozenset[str]:
    """The tail facts owned by a split ranked above `split`: what text for `split` must not state."""
    return frozenset(f for f, s in owner.items() if s and _RANK[s] > _RANK[split])


def corpus_leaks(passages: Iterable, level: Mapping[str, str], owner: Mapping[str, str], world: World,
                 index: MentionIndex | None = None, questions: Sequence[Question] = ()) -> list[str]:  # fmt: skip
    """Violations of rule 3: passages stating a fact above their level, and questions listing a
    passage above their split. `passages` are `schema.Passage`s, `level` their levels by id."""
    index = index or MentionIndex(world)
    problems = []
    for p in passages:
        above = sorted(f for f in index.stated_facts(p.contents)
                       if owner.get(f) and _RANK[owner[f]] > _RANK[level[p.id]])  # fmt: skip
        if above:
            problems.append(f"passage {p.id} ({level[p.id]}) states {above}, facts of a later split")
    for q in questions:
        for pid in q.passages:
            if _RANK[level[pid]] > _RANK[q.split]:
                problems.append(f"{q.id} ({q.split}) lists passage {pid} of level {level[pid]}")
    return problems
