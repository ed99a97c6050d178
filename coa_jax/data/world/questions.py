"""Question candidates shaped like the six benchmarks, each with its chain of facts.

| dataset   | types                                        | facts (hops) |
|-----------|----------------------------------------------|--------------|
| nq        | single (lower case, no question mark)        | 1            |
| triviaqa  | single (quiz phrasing)                       | 1            |
| hotpotqa  | bridge; comparison incl. yes/no              | 2            |
| 2wiki     | compositional ("the director of film X"); comparison; bridge_comparison incl. yes/no | 2, 4 |
| musique   | chain (nested noun phrases)                  | 3, 4         |
| bamboogle | hard (relative clauses; tail facts only)     | 2-4          |

Candidates come out shuffled, with empty `id`, `split` and passages; `splits.assign_splits` picks
from them, and `link_passages` points the chosen ones at the corpus (which is rendered after the
splits are known, see `corpus`).
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Sequence

from coa_jax.data.world import templates as T
from coa_jax.data.world.corpus import Corpus, words_for
from coa_jax.data.world.schema import ChainStep, Entity, Question, World

CHAINS2 = (
    ("creator", "born_in"), ("creator", "birth_year"), ("creator", "educated_at"), ("creator", "spouse"),
    ("publisher", "founded_by"), ("publisher", "headquarters"), ("publisher", "founded_year"),
    ("founded_by", "born_in"), ("founded_by", "birth_year"), ("founded_by", "educated_at"),
    ("spouse", "born_in"), ("spouse", "birth_year"), ("spouse", "occupation"),
    ("educated_at", "headquarters"), ("educated_at", "founded_by"),
    ("born_in", "country"), ("headquarters", "country"),
)  # fmt: skip
CHAINS3 = (
    ("creator", "born_in", "country"), ("publisher", "founded_by", "born_in"),
    ("publisher", "founded_by", "birth_year"), ("publisher", "headquarters", "country"),
    ("founded_by", "spouse", "born_in"), ("creator", "spouse", "born_in"), ("creator", "spouse", "birth_year"),
    ("creator", "educated_at", "headquarters"), ("creator", "educated_at", "founded_by"),
    ("educated_at", "founded_by", "born_in"), ("founded_by", "born_in", "country"),
)  # fmt: skip
CHAINS4 = (
    ("publisher", "founded_by", "born_in", "country"), ("creator", "spouse", "born_in", "country"),
    ("creator", "educated_at", "founded_by", "birth_year"), ("creator", "educated_at", "founded_by", "born_in"),
    ("publisher", "founded_by", "spouse", "born_in"), ("founded_by", "educated_at", "headquarters", "country"),
    ("creator", "educated_at", "headquarters", "country"), ("publisher", "founded_by", "educated_at", "headquarters"),
)  # fmt: skip
CHAINS_HARD = (
    ("creator", "born_in"), ("creator", "spouse"), ("publisher", "founded_by"), ("founded_by", "born_in"),
    ("creator", "birth_year"), ("born_in", "country", "capital"), ("founded_by", "born_in", "country", "capital"),
    ("creator", "born_in", "country", "capital"), ("creator", "educated_at", "founded_by"),
)  # fmt: skip
HOTPOT_COMPARE = ((("birth_year",), "earlier"), (("birth_year",), "later"), (("founded_year",), "earlier"),
                  (("born_in",), "same"), (("occupation",), "same"))  # fmt: skip
WIKI_COMPARE = ((("year",), "earlier"), (("year",), "later"), (("founded_year",), "later"),
                (("population",), "larger"), (("headquarters",), "same"))  # fmt: skip
WIKI_BRIDGE_COMPARE = ((("creator", "birth_year"), "earlier"), (("creator", "birth_year"), "later"),
                       (("publisher", "founded_year"), "earlier"), (("creator", "born_in"), "same"),
                       (("born_in", "country"), "same"), (("headquarters", "country"), "same"))  # fmt: skip

ANCHOR_KIND = {
    "creator": "work", "publisher": "work", "year": "work",
    "founded_by": "org", "founded_year": "org", "headquarters": "org",
    "born_in": "person", "birth_year": "person", "occupation": "person", "spouse": "person", "educated_at": "person",
    "country": "city", "population": "city", "capital": "country",
}  # fmt: skip


class QuestionMaker:
    """Builds questions over one world, drawing phrasings from `rng`."""

    def __init__(self, world: World, rng: random.Random):
        self.world, self.rng = world, rng

    # ---- facts -> steps ----
    def step(self, from_id: str, relation: str, branch: int = 0) -> ChainStep | None:
        fact = self.world.lookup(from_id, relation)
        if fact is None:
            return None
        subject = self.world.by_id[from_id]
        target = self.world.target(fact, from_id)
        value = self.world.by_id[target].name if target else fact.value
        query = T.render(T.QUERY[relation], s=subject.name, **words_for(self.world, subject))
        return ChainStep(fact.id, from_id, relation, value, target, query, "", branch)

    def walk(self, anchor: str, relations: Sequence[str], branch: int = 0) -> tuple[ChainStep, ...] | None:
        steps, at, seen = [], anchor, {anchor}
        for relation in relations:
            s = self.step(at, relation, branch)
            if s is None or (s.object and s.object in seen):
                return None
            steps.append(s)
            at = s.object
            seen.add(at)
        return tuple(steps)

    def golds(self, last: ChainStep) -> tuple[str, ...]:
        if last.object:
            return self.world.by_id[last.object].surfaces
        return (last.value,)

    def make(self, dataset: str, qtype: str, operation: str, text: str, golds: tuple[str, ...],
             steps: tuple[ChainStep, ...]) -> Question:  # fmt: skip
        tiers = {self.world.fact_by_id[s.fact].tier for s in steps}
        return Question("", text, golds, dataset, "", qtype, operation, len(steps),
                        "tail" if "tail" in tiers else "popular", steps, ())  # fmt: skip

    # ---- phrasing ----
    def noun_phrase(self, anchor: Entity, relations: Sequence[str], style: str) -> str:
        x = anchor.name
        if style == "kind" and anchor.kind in ("work", "org"):
            x = f"{T.WORK_WORDS[anchor.subkind]['noun'] if anchor.kind == 'work' else T.ORG_WORDS[anchor.subkind]} {x}"
        table = T.NP_RELATIVE if style == "relative" else T.NP_PLAIN
        for relation in relations:
            x = T.render(table[relation], x=x, **words_for(self.world, anchor))
        return x

    def compose_text(self, anchor: Entity, relations: Sequence[str], style: str) -> str:
        for k in (3, 2):
            suffix = tuple(relations[-k:])
            if len(relations) >= k and suffix in T.FINAL_SUFFIX:
                x = self.noun_phrase(anchor, relations[:-k], style)
                return T.render(self.rng.choice(T.FINAL_SUFFIX[suffix]), x=x)
        x = self.noun_phrase(anchor, relations[:-1], style)
        return T.render(self.rng.choice(T.FINAL[relations[-1]]), x=x)

    # ---- question families ----
    def singles(self, dataset: str) -> list[Question]:
        table = T.NQ if dataset == "nq" else T.TRIVIA
        out = []
        for fact in self.world.facts:
            for from_id in dict.fromkeys((fact.subject, fact.object if fact.relation == "spouse" else fact.subject)):
                s = self.step(from_id, fact.relation)
                subject = self.world.by_id[from_id]
                text = T.render(self.rng.choice(table[fact.relation]), s=subject.name, **words_for(self.world, subject))
                out.append(self.make(dataset, "single", "lookup", text, self.golds(s), (s,)))
        return out

    def compositions(self, dataset: str, qtype: str, chains: Sequence[tuple[str, ...]], style: str) -> list[Question]:
        out = []
        for relations in chains:
            for anchor in self.world.of_kind(ANCHOR_KIND[relations[0]]):
                steps = self.walk(anchor.id, relations)
                if steps is not None:
                    text = self.compose_text(anchor, relations, style)
                    out.append(self.make(dataset, qtype, "lookup", text, self.golds(steps[-1]), steps))
        return out

    def comparisons(self, dataset: str, qtype: str, keys: Sequence[tuple[tuple[str, ...], str]]) -> list[Question]:
        out = []
        for relations, operation in keys:
            anchors = self.world.of_kind(ANCHOR_KIND[relations[0]])
            groups = [anchors] if relations[0] not in ("year", "creator", "publisher") else [
                tuple(a for a in anchors if a.subkind == kind) for kind in T.WORK_WORDS]  # fmt: skip
            for group in groups:
                for a, b in self._pairs(group, relations, operation):
                    q = self._compare(dataset, qtype, relations, operation, a, b)
                    if q is not None:
                        out.append(q)
        return out

    def _pairs(self, group: Sequence[Entity], relations: Sequence[str], operation: str) -> list[tuple[Entity, Entity]]:
        pairs = list(itertools.combinations(group, 2))
        self.rng.shuffle(pairs)
        pairs = pairs[: 3 * len(group)]
        if operation == "same":  # add pairs that share the value, so "yes" is as common as "no"
            ends: dict[str, list[Entity]] = {}
            for e in group:
                steps = self.walk(e.id, relations)
                if steps is not None:
                    ends.setdefault(steps[-1].value, []).append(e)
            same = [p for members in ends.values() for p in itertools.combinations(members, 2)]
            self.rng.shuffle(same)
            pairs = same[: len(pairs) // 2] + pairs[: len(pairs) // 2]
        return [(a, b) if self.rng.random() < 0.5 else (b, a) for a, b in pairs]

    def _compare(self, dataset: str, qtype: str, relations: tuple[str, ...], operation: str, a: Entity,
                 b: Entity) -> Question | None:  # fmt: skip
        sa, sb = self.walk(a.id, relations, 0), self.walk(b.id, relations, 1)
        if sa is None or sb is None or (len(relations) > 1 and sa[0].object == sb[0].object):
            return None
        va, vb = sa[-1].value, sb[-1].value
        if operation == "same":
            golds = ("yes",) if va == vb else ("no",)
        else:
            na, nb = int(va.replace(",", "")), int(vb.replace(",", ""))
            if na == nb:
                return None
            first_wins = (na < nb) if operation == "earlier" else (na > nb)
            golds = (a if first_wins else b).surfaces
        template = self.rng.choice(T.COMPARE[(relations, operation)])
        text = T.render(template, a=a.name, b=b.name, **words_for(self.world, a))
        return self.make(dataset, qtype, operation, text, golds, sa + sb)


def _mix(rng: random.Random, pools: Sequence[list[Question]], weights: Sequence[float]) -> list[Question]:
    """Shuffles each pool, then interleaves them drawing pools with `weights`."""
    pools = [list(p) for p in pools]
    for p in pools:
        rng.shuffle(p)
    out: list[Question] = []
    while any(pools):
        live = [i for i, p in enumerate(pools) if p]
        i = rng.choices(live, [weights[j] for j in live])[0]
        out.append(pools[i].pop())
    return out


def candidate_pools(world: World, rng: random.Random) -> dict[str, list[Question]]:
    """dataset -> shuffled candidate questions (may repeat a fact set; `assign_splits` dedupes)."""
    m = QuestionMaker(world, rng)
    hard = [q for q in m.compositions("bamboogle", "hard", CHAINS_HARD, "relative") if q.tier == "tail"]
    return {
        "nq": _mix(rng, [m.singles("nq")], [1]),
        "triviaqa": _mix(rng, [m.singles("triviaqa")], [1]),
        "hotpotqa": _mix(rng, [m.compositions("hotpotqa", "bridge", CHAINS2, "plain"),
                               m.comparisons("hotpotqa", "comparison", HOTPOT_COMPARE)], [0.6, 0.4]),
        "2wiki": _mix(rng, [m.compositions("2wiki", "compositional", CHAINS2, "kind"),
                            m.comparisons("2wiki", "comparison", WIKI_COMPARE),
                            m.comparisons("2wiki", "bridge_comparison", WIKI_BRIDGE_COMPARE)], [0.4, 0.3, 0.3]),
        "musique": _mix(rng, [m.compositions("musique", "chain", CHAINS3, "plain"),
                              m.compositions("musique", "chain", CHAINS4, "plain")], [0.6, 0.4]),
        "bamboogle": _mix(rng, [hard], [1]),
    }  # fmt: skip


def link_passages(q: Question, corpus: Corpus) -> Question:
    """`q` with its supporting passages: per step, the first passage of the step's subject that
    states the fact (its own side of a marriage), and for an answer with aliases the answer's
    lead passage, which introduces them."""
    steps = []
    for s in q.steps:
        ids = corpus.fact_passages[s.fact]
        own = [p for p in ids if corpus.passages[int(p)].entity == s.subject]
        steps.append(dataclasses.replace(s, passage=(own or list(ids))[0]))
    passages = list(dict.fromkeys(s.passage for s in steps))
    answer = steps[-1].object if q.operation == "lookup" else ""
    if answer and len(q.golds) > 1:
        passages = list(dict.fromkeys((*passages, corpus.entity_passages[answer][0])))
    return dataclasses.replace(q, steps=tuple(steps), passages=tuple(passages))
