"""The CoT teacher: reasons without tools, from memory only.

Right when every fact a question needs is popular (known); on tail facts it states a plausible
wrong value (`TeacherWorld.guess`) and goes on from there, so its answers are mostly wrong.
"""

from __future__ import annotations

from coa_jax.data.teacher import phrases
from coa_jax.data.teacher.knowledge import TeacherWorld
from coa_jax.data.teacher.trajectory import Trajectory, Writer, solve
from coa_jax.data.world.schema import Entity, Question


def write_cot(q: Question, tw: TeacherWorld) -> Trajectory:
    """The CoT trajectory for `q` (deterministic for the world's seed)."""
    writer = Writer()

    def resolve(subject: Entity, relation: str) -> str:
        words = tw.words(subject)
        value, known = tw.recall(subject, relation)
        writer.events["recalled" if known else "guessed"] += 1
        writer.line(phrases.need(subject, relation, words))
        writer.line(phrases.statement(subject, relation, value, words))
        return value

    answer = solve(q, tw, resolve, writer)
    return writer.finish(q.id, "cot", answer)
