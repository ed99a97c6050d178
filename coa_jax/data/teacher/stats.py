"""The numbers a teacher run is judged by: accuracy of its CoA and CoT trajectories (reference
reward), what it wrote, how it behaved, how long its trajectories are, what it left out because
it would state a held-out (dev or test) fact, and how many test tail facts the observations it
wrote show (observations are masked in SFT-2 but trained on in SFT-3; it must be 0)."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from coa_jax.data.teacher.reasoner import ReasonerTraces
from coa_jax.data.teacher.reading import read_observation
from coa_jax.data.teacher.trajectory import OBSERVATION, POLICY
from coa_jax.data.world.leakage import MentionIndex
from coa_jax.data.world.store import WorldFiles

if TYPE_CHECKING:
    from coa_jax.data.teacher.coa import CoAHabits
    from coa_jax.data.teacher.write import TeacherRun


@dataclasses.dataclass(frozen=True)
class TeacherStats:
    """Counts and rates of one teacher run (one split).

    `mean_tokens` (world tokenizer; empty without one): "cot", "coa" (whole assistant turn),
    "coa_policy" (its policy-written part), "coa_observation", "pair_context",
    "pair_chosen", "pair_rejected".
    """

    seed: int
    style: str
    split: str
    questions: int
    popular: int
    tail: int
    coa_correct: int
    cot_correct_popular: int
    cot_correct_tail: int
    cot_rows: int
    coa_rows: int
    pair_rows: int
    pairs_action_chosen: int
    reasoner_traces: int
    reasoner_traces_dropped: int
    mean_searches: float
    coa_without_search: int
    events: Mapping[str, int]
    mean_tokens: Mapping[str, float]
    test_tail_facts: int
    test_tail_facts_in_observations: int
    held_out_facts: int = 0  # tail facts owned by dev or test
    dropped_for_leakage: Mapping[str, int] = dataclasses.field(default_factory=dict)  # coa / cot / pairs
    queries_held_back: int = 0  # queries not used: their results would state a held-out fact
    topk: int = 3  # results per search in the trajectories' observations
    habits: Mapping[str, float] = dataclasses.field(default_factory=dict)  # the CoA teacher's (CoAHabits)
    base_tool_use: float = 0.0  # share of questions drawn for the base reasoner's tool-use rows
    tool_use_rows: int = 0  # rows written for it (drawn, right, with a search)
    extra_worlds: int = 0  # other worlds whose CoA and skill rows were added
    extra_rows: Mapping[str, int] = dataclasses.field(default_factory=dict)  # coa / skills / dropped (leak guard)

    @property
    def coa_accuracy(self) -> float:
        """Right CoA trajectories over all questions (a dropped trajectory counts as not right)."""
        return self.coa_correct / max(1, self.questions)

    @property
    def cot_accuracy_popular(self) -> float:
        return self.cot_correct_popular / max(1, self.popular)

    @property
    def cot_accuracy_tail(self) -> float:
        return self.cot_correct_tail / max(1, self.tail)

    def to_json(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        row.update(coa_accuracy=round(self.coa_accuracy, 4), cot_accuracy_popular=round(self.cot_accuracy_popular, 4),
                   cot_accuracy_tail=round(self.cot_accuracy_tail, 4))  # fmt: skip
        return row

    def summary(self) -> str:
        """A few lines for people."""
        t = self.mean_tokens
        lines = [
            f"teacher on {self.questions} {self.split} questions ({self.popular} popular, {self.tail} tail), "
            f"seed {self.seed}, {self.style} prompts",
            f"CoA accuracy (real search, reference reward): {self.coa_accuracy:.1%}",
            f"CoT accuracy: popular {self.cot_accuracy_popular:.1%}, tail {self.cot_accuracy_tail:.1%}",
            f"files: CoT {self.cot_rows}, CoA {self.coa_rows}, CoT+A pairs {self.pair_rows} "
            f"({self.pairs_action_chosen} action chosen, "
            f"{self.pair_rows - self.pairs_action_chosen} no-action chosen), "
            f"reasoner traces {self.reasoner_traces} ({self.reasoner_traces_dropped} dropped for leakage)",
            f"searches per CoA trajectory {self.mean_searches:.2f}; {self.coa_without_search} CoA answered from "
            f"memory; events {dict(sorted(self.events.items()))}",
        ]
        if t:
            lines.append("mean tokens: " + ", ".join(f"{k} {v:.0f}" for k, v in t.items()))
        d = self.dropped_for_leakage
        lines.append(f"held-out (dev/test) facts: {self.held_out_facts}; left out as they would state one: "
                     f"CoA {d.get('coa', 0)}, CoT {d.get('cot', 0)}, pairs {d.get('pairs', 0)}; "
                     f"queries not used {self.queries_held_back}")  # fmt: skip
        lines.append(f"test tail facts shown in CoA observations: {self.test_tail_facts_in_observations} "
                     f"of {self.test_tail_facts}")  # fmt: skip
        return "\n".join(lines)


def _mean(values: list[int]) -> float:
    return round(sum(values) / len(values), 1) if values else 0.0


def _token_means(run: TeacherRun, tokenizer) -> dict[str, float]:
    def n(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    coa = [run.coa[q.id] for q in run.questions if run.coa[q.id] is not None]
    out = {
        "cot": _mean([n(run.cot[q.id].text) for q in run.questions]),
        "coa": _mean([n(t.text) for t in coa]),
        "coa_policy": _mean([sum(n(s.text) for s in t.segments if s.kind == POLICY) for t in coa]),
        "coa_observation": _mean([sum(n(s.text) for s in t.segments if s.kind == OBSERVATION) for t in coa]),
    }
    if run.pairs:
        out["pair_context"] = _mean([n(p.prefix) for p in run.pairs])
        out["pair_chosen"] = _mean([n(p.chosen) for p in run.pairs])
        out["pair_rejected"] = _mean([n(p.rejected) for p in run.pairs])
    return out


def collect_stats(run: TeacherRun, files: WorldFiles, index: MentionIndex, *, seed: int, style: str, topk: int,
                  habits: CoAHabits, base_tool_use: tuple[float, int], extra: tuple[int, int, int, int], rows: tuple[int, int], traces: ReasonerTraces, tokenizer=None,
                  held_out: frozenset[str] = frozenset()) -> TeacherStats:  # fmt: skip
    """Stats of `run`; `rows` are the (CoT, CoA) rows written; `tokenizer` a `tokenizers.Tokenizer`;
    `held_out` the facts the files must not state."""
    qs = run.questions
    events: collections.Counter[str] = collections.Counter()
    shown: set[tuple[str, str]] = set()
    for q in qs:
        if run.coa[q.id] is None:
            continue
        events.update(run.coa[q.id].events)
        for s in run.coa[q.id].segments:
            if s.kind == OBSERVATION:
                shown.update((p.title, p.text) for p in read_observation(s.text))
    tail = {f.id for f in files.facts if f.tier == "tail"}
    test_tail = {f for q in files.questions("test") for f in q.facts if f in tail}
    stated = set().union(*(index.stated_facts(f"{title}\n{text}") for title, text in shown)) if shown else set()
    popular = [q for q in qs if q.tier == "popular"]
    split = qs[0].split if qs else ""
    return TeacherStats(
        seed=seed, style=style, topk=topk, habits=dataclasses.asdict(habits), base_tool_use=base_tool_use[0],
        tool_use_rows=base_tool_use[1], extra_worlds=extra[0],
        extra_rows={"coa": extra[1], "skills": extra[2], "dropped": extra[3]}, split=split, questions=len(qs), popular=len(popular), tail=len(qs) - len(popular),
        coa_correct=sum(run.coa_right[q.id] for q in qs),
        cot_correct_popular=sum(run.cot_right[q.id] for q in popular),
        cot_correct_tail=sum(run.cot_right[q.id] for q in qs if q.tier == "tail"),
        cot_rows=rows[0], coa_rows=rows[1], pair_rows=len(run.pairs),
        pairs_action_chosen=sum(p.action_chosen for p in run.pairs),
        reasoner_traces=len(traces.conversations), reasoner_traces_dropped=traces.dropped_for_leakage,
        mean_searches=round(events["searches"] / max(1, sum(run.coa[q.id] is not None for q in qs)), 3),
        coa_without_search=sum(run.coa[q.id] is not None and run.coa[q.id].searches == 0 for q in qs),
        events=dict(sorted(events.items())),
        mean_tokens=_token_means(run, tokenizer) if tokenizer is not None else {},
        test_tail_facts=len(test_tail), test_tail_facts_in_observations=len(test_tail & stated),
        held_out_facts=len(held_out), dropped_for_leakage=dict(run.dropped), queries_held_back=run.queries_held_back,
    )  # fmt: skip
