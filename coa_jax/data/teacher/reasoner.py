"""Training text for the base "reasoner" (the analogue of R1-Distill: thinks, never searches).

Two parts: the world's popular facts (`pretrain.txt`, written by the world build) and CoT traces
on train questions, here. A trace is the CoT teacher's trajectory: right where the facts are
popular, a confident wrong guess where they are tail, like a reasoning model without tools.

No-leakage (rule 1 of `coa_jax.data.world.leakage`): a trace that states any tail fact is
dropped. Guesses never state the true tail fact, but a question and its guessed chain may
mention two entities that a real tail fact links; such traces are counted and left out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from coa_jax.data.formats.messages import Conversation, Message
from coa_jax.data.teacher.trajectory import Trajectory
from coa_jax.data.world.leakage import MentionIndex
from coa_jax.data.world.schema import Question, World


@dataclasses.dataclass(frozen=True)
class ReasonerTraces:
    """The kept traces (user prompt + CoT answer) and how many were dropped for leakage."""

    conversations: tuple[Conversation, ...]
    dropped_for_leakage: int


def reasoner_traces(items: Iterable[tuple[Question, str, Trajectory]], world: World,
                    index: MentionIndex | None = None, *, system: str | None = None) -> ReasonerTraces:  # fmt: skip
    """Conversations from (question, user prompt, CoT trajectory) triples, leak-checked.

    Raises:
      ValueError: a question that is not from the train split.
    """
    index = index or MentionIndex(world)
    tail = {f.id for f in world.facts if f.tier == "tail"}
    kept, dropped = [], 0
    for q, prompt, cot in items:
        if q.split != "train":
            raise ValueError(f"reasoner traces use train questions only, got {q.id} ({q.split})")
        if tail & index.stated_facts(f"{q.question}\n{cot.text}"):
            dropped += 1
            continue
        head = (Message("system", system),) if system else ()
        kept.append(Conversation((*head, Message("user", prompt), Message("assistant", cot.text))))
    return ReasonerTraces(tuple(kept), dropped)
