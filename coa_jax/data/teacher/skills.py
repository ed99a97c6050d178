"""General skills of the base reasoner, written from the CoA teacher's searches.

A real base model (R1-Distill) can already write a search query when asked and read retrieved
passages placed in its context; the workflow baseline (SPEC 3) relies on both. Our reasoner
starts from random weights, so the teacher writes these two skills for it, in exactly the texts
the workflow controller uses (`coa_jax.data.formats.workflow`):

  query     user: `query_prompt(question, need)`   assistant: a query that found that need
  reading   user: the question prompt
            assistant: the CoA trajectory: reasoning that states each need, the call and its
            results after it, lines that read the facts off the results, and the answer

Neither teaches the reasoner to *call* a tool: the reasoner stage tokenizes these rows with the
calls (and observations) as no targets (`ChatTokenizer.assistant_tokens(calls_as_prompt=True)`);
in the workflow the controller writes every call after a need line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from coa_jax.data.formats.messages import Conversation, Message
from coa_jax.data.formats.workflow import need_of, query_prompt
from coa_jax.data.teacher.phrases import NOT_FOUND
from coa_jax.data.teacher.trajectory import OBSERVATION, POLICY, Trajectory
from coa_jax.env.tags import SEARCH_SPEC

@dataclasses.dataclass(frozen=True)
class Skills:
    queries: tuple[Conversation, ...]
    reading: tuple[Conversation, ...]


def searches(trajectory: Trajectory) -> list[tuple[str | None, str, str, bool]]:
    """(need, query, observation, found) per search of a CoA trajectory, in order: `need` is what
    the line before the call asks for (None if that line states no need); `found` is False when
    the teacher's next line says no result gave what it looked for (a poor query, or one it had to
    reformulate)."""
    out, call = [], None
    for seg in trajectory.segments:
        if seg.kind == POLICY:
            if out and call is None and seg.text.startswith(NOT_FOUND):
                out[-1] = (*out[-1][:3], False)
            end = seg.text.rfind(SEARCH_SPEC.close_tag)
            start = seg.text.rfind(SEARCH_SPEC.open_tag, 0, end if end >= 0 else None)
            call = None
            if 0 <= start < end:
                lines = seg.text[:start].splitlines()
                call = (need_of(lines[-1]) if lines else None, seg.text[start + len(SEARCH_SPEC.open_tag):end].strip())
        elif seg.kind == OBSERVATION and call is not None:
            out.append((*call, seg.text, True))
            call = None
    return out


def _names_something(query: str) -> bool:
    return any(w[:1].isupper() or w[:1].isdigit() for w in query.split())


def write_skills(items: Iterable[tuple[str, str, Trajectory]], *, system: str | None = None) -> Skills:
    """Query and reading rows from (question, user prompt, CoA trajectory) triples.

    Only trajectories with at least one search give rows. A question gives one query row per search
    that found what it looked for after a need line (a query that found nothing, misspelled or
    missing the name, is no skill to teach; the need line after it, "No result gives ...", gets its
    own row with the better query), and one reading row."""
    head = (Message("system", system),) if system else ()
    queries, reading = [], []
    for question, prompt, coa in items:
        found = searches(coa)
        if not found:
            continue
        for need, q, _, ok in found:
            if need and ok and _names_something(q):
                queries.append(Conversation((*head, Message("user", query_prompt(question, need)),
                                             Message("assistant", q))))
        reading.append(Conversation((*head, Message("user", prompt), Message("assistant", coa.text))))
    return Skills(tuple(queries), tuple(reading))
