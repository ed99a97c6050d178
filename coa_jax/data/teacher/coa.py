"""The CoA teacher: reasons with the real search tool, reading values out of the results.

For every fact a question needs it writes what it needs, then either states the fact from
memory (only popular facts, and only some of the time: `skip_known`) or searches. A search is
run by the same `SearchTool` the rollout uses and its observation is appended verbatim; the
teacher then reads the passages (`reading`), takes the value stated by the passage about the
subject, and if no result states it, reformulates the query and searches again.

Realistic imperfections, drawn per question from the seed:
- `poor_query`: the first query drops the entity name or misspells it (a near-duplicate name);
  the teacher sees no result about the subject and searches again with a proper query;
- `distractor`: the teacher first reads a result about another entity as if it were the subject,
  notices the title, and corrects itself.
For contrastive pairs, `write(..., follow_distractor_at=k)` makes a deliberately wrong variant:
at step k it searches and believes a result about another entity, never correcting.

Held-out facts (`guard`): a query whose observation would make the trajectory state a dev or
test fact is not used. The teacher searches with its next query instead (for a popular fact it
recalls the fact); if no usable query finds the fact, or the finished trajectory states one
anyway, the trajectory is dropped (`write` returns None) and counted in `dropped`.
"""

from __future__ import annotations

import collections
import dataclasses
import random

from coa_jax.data.teacher import phrases
from coa_jax.data.teacher.guard import LeakGuard
from coa_jax.data.teacher.knowledge import TeacherWorld
from coa_jax.data.teacher.reading import ReadPassage, read_observation, read_value
from coa_jax.data.teacher.trajectory import Trajectory, Writer, solve
from coa_jax.data.world import names
from coa_jax.data.world import templates as T
from coa_jax.data.world.schema import Entity, Question
from coa_jax.env.search_tool import SearchTool


@dataclasses.dataclass(frozen=True)
class CoAHabits:
    """How often the CoA teacher does what (probabilities per fact / per search)."""

    skip_known: float = 0.5  # state a popular fact from memory instead of searching
    poor_query: float = 0.15  # start a fact with a poor query
    distractor: float = 0.15  # read a result about another entity first, then correct
    max_queries: int = 3  # proper queries per fact before giving up

    def errors(self) -> list[tuple[str, str]]:
        out = [(name, f"must be in [0, 1], got {getattr(self, name)}")
               for name in ("skip_known", "poor_query", "distractor") if not 0 <= getattr(self, name) <= 1]
        if self.max_queries < 1:
            out.append(("max_queries", f"must be >= 1, got {self.max_queries}"))
        return out


class _NoDistractor(Exception):
    """No result about another entity states the relation: a wrong variant cannot be made."""


class _HeldOut(Exception):
    """Every query that could find a fact shows a held-out fact: the trajectory is dropped."""


class CoATeacher:
    """Writes CoA trajectories with a search tool over the world's corpus.

    Args:
      tw: the world as the teacher sees it.
      tool: the search tool (its observations go verbatim into the trajectories).
      habits: probabilities of the teacher's habits.
      guard: the facts its trajectories must not state (None: no check).
    """

    def __init__(self, tw: TeacherWorld, tool: SearchTool, habits: CoAHabits = CoAHabits(),
                 guard: LeakGuard | None = None):  # fmt: skip
        self.tw, self.tool, self.habits, self.guard = tw, tool, habits, guard
        self._cache: dict[str, str] = {}
        self.dropped: collections.Counter[str] = collections.Counter()  # variant -> trajectories dropped
        self.held_back: collections.Counter[str] = collections.Counter()  # variant -> queries not used

    def usable(self, writer: Writer, query: str, variant: str = "main") -> bool:
        """Whether searching `query` next keeps the trajectory free of held-out facts."""
        if self.guard is None or self.guard.clean(writer.context, writer.text, self.observe(query)):
            return True
        self.held_back[variant] += 1
        return False

    def observe(self, query: str) -> str:
        """The tool's observation text for `query` (cached: the tool is deterministic)."""
        if query not in self._cache:
            self._cache[query] = self.tool.call([query])[0].text
        return self._cache[query]

    def read(self, query: str, relation: str) -> list[tuple[ReadPassage, str]]:
        """(passage, value) for every result that states `relation`, best first."""
        found = []
        for passage in read_observation(self.observe(query), self.tool.fmt):
            value = read_value(passage, relation)
            if value is not None:
                found.append((passage, value))
        return found

    def write(self, q: Question, *, variant: str = "main", skip_known: float | None = None,
              follow_distractor_at: int | None = None) -> Trajectory | None:  # fmt: skip
        """One CoA trajectory for `q`.

        Args:
          q: the question.
          variant: names the random stream (one stream per variant and question).
          skip_known: overrides `habits.skip_known` (1.0: recall every popular fact).
          follow_distractor_at: the step (0-based, over all branches) at which to search and
            believe a result about another entity; None for a normal trajectory.

        Returns:
          The trajectory, or None when a wrong variant was asked for and no distractor exists, or
          when the trajectory would state a held-out fact (counted in `dropped`).
        """
        rng = random.Random(f"{self.tw.seed}/coa/{variant}/{q.id}")
        skip = self.habits.skip_known if skip_known is None else skip_known
        writer = Writer(q.question)
        step = iter(range(len(q.steps)))

        def resolve(subject: Entity, relation: str) -> str:
            words = self.tw.words(subject)
            writer.line(phrases.need(subject, relation, words))
            if next(step) == follow_distractor_at:
                return self._follow_distractor(subject, relation, words, writer, rng, variant)
            known = self.tw.known(subject, relation)
            if known is not None and rng.random() < skip:
                return self._recall(subject, relation, known, words, writer)
            return self._search(subject, relation, words, writer, rng, known, variant)

        try:
            answer = solve(q, self.tw, resolve, writer)
        except _NoDistractor:
            return None
        except _HeldOut:
            self.dropped[variant] += 1
            return None
        trajectory = writer.finish(q.id, "coa", answer)
        if self.guard is not None and not self.guard.clean(q.question, trajectory.text):
            self.dropped[variant] += 1
            return None
        return trajectory

    @staticmethod
    def _recall(subject: Entity, relation: str, known: str, words: dict[str, str], writer: Writer) -> str:
        writer.events["recalled"] += 1
        writer.line(phrases.statement(subject, relation, known, words))
        return known

    # ---- queries ----
    def queries(self, subject: Entity, relation: str, words: dict[str, str]) -> list[str]:
        """Proper queries for a fact, best first: the relation's query, name + noun, the name."""
        first = T.render(T.QUERY[relation], s=subject.name, **words)
        options = (first, f"{subject.name} {phrases.noun(relation, words)}", subject.name)
        return list(dict.fromkeys(options))

    def alternates(self, subject: Entity, relation: str, words: dict[str, str]) -> list[str]:
        """More ways to ask for a fact (the question phrasings of the world), for when the proper
        queries cannot be used."""
        options = [T.render(t, s=subject.name, **words) for t in (*T.NQ[relation], *T.TRIVIA[relation])]
        return list(dict.fromkeys(options))

    def poor_queries(self, subject: Entity, relation: str, words: dict[str, str], rng: random.Random) -> list[str]:
        """Poor queries: the name misspelled (one vowel changed), the name left out."""
        typo = names.one_letter_variant(rng, subject.name)
        out = [T.render(T.QUERY[relation], s=typo, **words)] if typo != subject.name else []
        out.append(T.render(T.QUERY[relation], s="", **words).strip())
        return out

    # ---- one fact ----
    def _search(self, subject: Entity, relation: str, words: dict[str, str], writer: Writer,
                rng: random.Random, known: str | None = None, variant: str = "main") -> str:  # fmt: skip
        queries = self.queries(subject, relation, words)[: self.habits.max_queries]
        if rng.random() < self.habits.poor_query:
            poor = rng.choice(self.poor_queries(subject, relation, words, rng))
            if poor not in queries and self.usable(writer, poor, variant):
                queries.insert(0, poor)
                writer.events["poor_query"] += 1
        spare = [x for x in self.alternates(subject, relation, words) if x not in queries]
        held_back, searched = False, False
        n = 0
        while n < len(queries):
            query = queries[n]
            n += 1
            if not self.usable(writer, query, variant):
                held_back = True
                if known is not None and not searched:  # a fact it knows: no need to search
                    return self._recall(subject, relation, known, words, writer)
                if spare:  # ask another way instead
                    queries.insert(n, spare.pop(0))
                continue
            searched = True
            found = self.read(query, relation)
            writer.search(query, self.observe(query))
            own = [v for p, v in found if p.title == subject.name]
            if not own:
                writer.line(phrases.not_found(subject, relation, words))
                if n < len(queries):
                    writer.events["reformulated"] += 1
                continue
            others = [(p, v) for p, v in found if p.title != subject.name and v != own[0]]
            if others and rng.random() < self.habits.distractor:
                passage, value = others[0]
                writer.line(phrases.statement(subject, relation, value, words))
                writer.line(phrases.wrong_subject(passage.title, subject))
                writer.events["distractor_corrected"] += 1
            writer.line(phrases.statement(subject, relation, own[0], words))
            return own[0]
        if held_back and known is None:
            raise _HeldOut
        writer.events["gave_up"] += 1
        writer.line(phrases.gave_up(subject, relation, words))
        value, _ = self.tw.recall(subject, relation)
        writer.line(phrases.statement(subject, relation, value, words))
        return value

    def _follow_distractor(self, subject: Entity, relation: str, words: dict[str, str], writer: Writer,
                           rng: random.Random, variant: str = "main") -> str:  # fmt: skip
        candidates = self.queries(subject, relation, words)[:1] + self.poor_queries(subject, relation, words, rng)
        for query in candidates:
            if not self.usable(writer, query, variant):
                continue
            found = self.read(query, relation)
            own = {v for p, v in found if p.title == subject.name}
            others = [(p, v) for p, v in found if p.title != subject.name and v not in own]
            if others:
                writer.search(query, self.observe(query))
                writer.line(phrases.statement(subject, relation, others[0][1], words))
                writer.events["distractor_followed"] += 1
                return others[0][1]
        raise _NoDistractor
