"""A teacher trajectory (policy text and tool observations, in order) and the plan walk that
both teachers share.

Trajectory text format (the reference's, SPEC "Trajectory text format"):

    <think>
    I need the founder of Drugra Music.
    <begin_search> Drugra Music founded by </end_search>

    <search_result> result 1: ... </search_result>

    Drugra Music was founded by Refaind Vokaisard.
    ...
    </think>

    The answer is 1924.

    \\boxed{1924}

`solve` walks a question's chain of relations branch by branch (a comparison has two branches)
and asks a `resolve(subject, relation)` callback for each value; the callback writes its own
lines. The CoT teacher resolves from memory, the CoA teacher by searching.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Mapping

from coa_jax.data.teacher import phrases
from coa_jax.data.teacher.knowledge import ENTITY_RELATIONS, TeacherWorld
from coa_jax.data.world.schema import Entity, Question
from coa_jax.env.tags import SEARCH_SPEC

POLICY = "policy"
OBSERVATION = "observation"


@dataclasses.dataclass(frozen=True)
class Segment:
    """A run of trajectory text: written by the policy, or appended by the search tool."""

    kind: str
    text: str


@dataclasses.dataclass(frozen=True)
class Trajectory:
    """One assistant turn.

    Attributes:
      question_id: the world question it answers.
      mode: "cot" (no tools) or "coa" (with search).
      segments: policy and observation runs in order; their concatenation is the text.
      answer: the boxed answer.
      events: counts of what happened (searches, recalled, guessed, poor_query, reformulated,
        distractor_corrected, distractor_followed, gave_up).
    """

    question_id: str
    mode: str
    segments: tuple[Segment, ...]
    answer: str
    events: Mapping[str, int]

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments)

    @property
    def searches(self) -> int:
        return self.events.get("searches", 0)


class Writer:
    """Accumulates a trajectory's segments and event counts. `context`: what the learner sees
    before the trajectory (the question)."""

    def __init__(self, context: str = ""):
        self.context = context
        self.segments: list[Segment] = [Segment(POLICY, phrases.THINK_OPEN)]
        self.events: collections.Counter[str] = collections.Counter()

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments)

    def line(self, text: str) -> None:
        self._policy(text)

    def search(self, query: str, observation: str) -> None:
        """The action (policy) then the observation exactly as the tool rendered it."""
        self._policy(f"{SEARCH_SPEC.open_tag} {query} {SEARCH_SPEC.close_tag}")
        self.segments.append(Segment(OBSERVATION, observation))
        self.events["searches"] += 1

    def _policy(self, text: str) -> None:
        if self.segments and self.segments[-1].kind == POLICY:
            self.segments[-1] = Segment(POLICY, self.segments[-1].text + text)
        else:
            self.segments.append(Segment(POLICY, text))

    def finish(self, question_id: str, mode: str, answer: str) -> Trajectory:
        self._policy(phrases.THINK_CLOSE + phrases.answer(answer))
        return Trajectory(question_id, mode, tuple(self.segments), answer, dict(self.events))


Resolve = Callable[[Entity, str], str]


def branches(q: Question) -> list[tuple[str, tuple[str, ...]]]:
    """(anchor entity id, relations) per branch, in question order. Only the anchors (named in
    the question text) and the relations are read from the record, never the values."""
    out: dict[int, tuple[str, list[str]]] = {}
    for step in q.steps:
        if step.branch not in out:
            out[step.branch] = (step.subject, [])
        out[step.branch][1].append(step.relation)
    return [(anchor, tuple(relations)) for anchor, relations in out.values()]


def solve(q: Question, tw: TeacherWorld, resolve: Resolve, writer: Writer) -> str:
    """Walks every branch with `resolve`, writes the comparison line if any; returns the answer."""
    names, values = [], []
    for anchor, relations in branches(q):
        subject = tw.world.by_id[anchor]
        names.append(subject.name)
        value = ""
        for i, relation in enumerate(relations):
            value = resolve(subject, relation)
            if i + 1 < len(relations):
                nxt = tw.entity_named(value) if relation in ENTITY_RELATIONS else None
                if nxt is None:  # the chain cannot go on from a value that names nothing
                    break
                subject = nxt
        values.append(value)
    if q.operation == "lookup":
        return values[0]
    line, result = phrases.compare(q.operation, (names[0], names[1]), (values[0], values[1]))
    writer.line(line)
    return result
