"""General skills of the base reasoner, written from the CoA teacher's searches.

A real base model (R1-Distill) can already write a search query when asked and read retrieved
passages placed in its context; the workflow baseline (SPEC 3) relies on both. Our reasoner
starts from random weights, so the teacher writes these two skills for it, in exactly the texts
the workflow controller uses (`coa_jax.data.formats.workflow`):

  query     user: `query_prompt(question, searches so far)`      assistant: the next query, or
            `NO_QUERY` once the searches so far found every fact the answer needs
  reading   user: the question prompt
            assistant: `controller_prefix(searches)` (not a training target) + the reasoning
            that reads the facts off the results, and the answer

Neither teaches the reasoner to *call* a tool: in reading rows the calls sit in the controller's
prefix, which ends with the last observation; the reasoner stage trains on no token before a
tool observation (`coa_jax.data.provenance.mask_through_last_observation`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from coa_jax.data.formats.messages import Conversation, Message
from coa_jax.data.formats.workflow import NO_QUERY, controller_prefix, query_prompt
from coa_jax.data.teacher.phrases import NOT_FOUND
from coa_jax.data.teacher.trajectory import OBSERVATION, POLICY, Trajectory
from coa_jax.env.tags import SEARCH_SPEC

@dataclasses.dataclass(frozen=True)
class Skills:
    queries: tuple[Conversation, ...]
    reading: tuple[Conversation, ...]


def searches(trajectory: Trajectory) -> list[tuple[str, str, bool]]:
    """(query, observation, found) per search of a CoA trajectory, in order: `found` is False when
    the teacher's next line says no result gave what it looked for (a poor query, or one it had to
    reformulate)."""
    out, query = [], None
    for seg in trajectory.segments:
        if seg.kind == POLICY:
            if out and query is None and seg.text.startswith(NOT_FOUND):
                out[-1] = (*out[-1][:2], False)
            end = seg.text.rfind(SEARCH_SPEC.close_tag)
            start = seg.text.rfind(SEARCH_SPEC.open_tag, 0, end if end >= 0 else None)
            query = seg.text[start + len(SEARCH_SPEC.open_tag):end].strip() if 0 <= start < end else None
        elif seg.kind == OBSERVATION and query is not None:
            out.append((query, seg.text, True))
            query = None
    return out


def reading_continuation(trajectory: Trajectory) -> str:
    """The CoA trajectory's policy text after its first observation, with the calls taken out:
    the lines that read the facts off the results, then the answer."""
    seen_obs, parts = False, []
    for seg in trajectory.segments:
        if seg.kind == OBSERVATION:
            seen_obs = True
        elif seen_obs:
            text = seg.text
            while (start := text.find(SEARCH_SPEC.open_tag)) >= 0:
                end = text.find(SEARCH_SPEC.close_tag, start)
                if end < 0:
                    break
                text = text[:start] + text[end + len(SEARCH_SPEC.close_tag):]
            parts.append(text)
    return "".join(parts).lstrip("\n")


def _names_something(query: str) -> bool:
    return any(w[:1].isupper() or w[:1].isdigit() for w in query.split())


def write_skills(items: Iterable[tuple[str, str, Trajectory]], *, system: str | None = None) -> Skills:
    """Query and reading rows from (question, user prompt, CoA trajectory) triples.

    Only trajectories with at least one search give rows. A question gives one query row per search
    that found what it looked for (a query that found nothing, misspelled or missing the name, is no
    skill to teach; the row after it, with the failed search in its notes, teaches the better
    query), one row answering `NO_QUERY` after its last search, and one reading row."""
    head = (Message("system", system),) if system else ()
    queries, reading = [], []
    for question, prompt, coa in items:
        found = searches(coa)
        done = [(q, obs) for q, obs, _ in found]
        if not done:
            continue
        for i, (q, _, ok) in enumerate(found):
            if ok and _names_something(q):
                queries.append(Conversation((*head, Message("user", query_prompt(question, done[:i])),
                                             Message("assistant", q))))
        queries.append(Conversation((*head, Message("user", query_prompt(question, done)),
                                     Message("assistant", NO_QUERY))))
        text = controller_prefix(done) + reading_continuation(coa)
        reading.append(Conversation((*head, Message("user", prompt), Message("assistant", text))))
    return Skills(tuple(queries), tuple(reading))
