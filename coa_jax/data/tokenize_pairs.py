"""Tokenised CoT+A contrastive pairs (SFT stage 1): one context, two continuations.

The reference file puts the shared assistant prefix inside the human turn, after the prompt
(`"value": prompt + prefix`). Here the prefix is taken back out (`split_prompt_prefix`) and the
context is tokenised as the rollout would see it: the chat prompt with the generation prompt,
then the prefix as the start of the assistant's turn. The context is encoded once, so both rows
of a pair start with the very same tokens; each continuation is encoded after it like assistant
text (policy runs and observations separately) and ends with the end-of-turn tokens.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from coa_jax.data.formats.contrastive import ContrastivePair
from coa_jax.data.formats.messages import Message
from coa_jax.data.formats.verl_parquet import QUESTION_MARKERS
from coa_jax.data.provenance import Provenance
from coa_jax.data.tokenize_sft import ChatTokenizer, TokenizedExample

THINK_OPEN = "<think>"
_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


def split_prompt_prefix(value: str) -> tuple[str, str]:
    """(prompt, assistant prefix) of a human turn holding `prompt + prefix`.

    The prefix starts at the first `<think>` after the question marker ("Question:" or the
    reference's); instructions mention the tag too, but always before the question. No marker
    or no tag after it: the whole value is the prompt.
    """
    start = 0
    for marker in QUESTION_MARKERS:
        at = value.rfind(marker)
        if at >= 0:
            start = at + len(marker)
            break
    else:
        return value, ""
    at = value.find(THINK_OPEN, start)
    return (value, "") if at < 0 else (value[:at], value[at:])


@dataclasses.dataclass(frozen=True)
class TokenizedPair:
    """A pair: shared context ids [C] and two continuations (ids + labels), and what was cut."""

    context: np.ndarray
    chosen: TokenizedExample
    rejected: TokenizedExample

    def row(self, which: str) -> TokenizedExample:
        """Context + the `which` ("chosen" / "rejected") continuation; the context is PROMPT."""
        cont = self.chosen if which == "chosen" else self.rejected
        labels = np.concatenate([np.full(self.context.shape, int(Provenance.PROMPT), np.int8), cont.labels])
        return TokenizedExample(np.concatenate([self.context, cont.tokens]), labels, cont.truncated)

    @property
    def truncated(self) -> int:
        return self.chosen.truncated + self.rejected.truncated


def tokenize_pair(pair: ContrastivePair, tok: ChatTokenizer, *, max_len: int | None = None) -> TokenizedPair | None:
    """Tokenises one pair; continuations are cut so that context + continuation fits `max_len`.

    Returns:
      The pair, or None when the context alone does not leave room for a continuation token.

    Raises:
      ValueError: a turn with an unknown speaker.
    """
    messages = []
    for turn in pair.conversation:
        if turn.speaker not in _ROLES:
            raise ValueError(f"unknown speaker {turn.speaker!r} in a contrastive pair")
        messages.append(Message(_ROLES[turn.speaker], turn.value))
    if messages[-1].role == "assistant":  # the prefix as its own (partial) assistant turn
        prefix = messages.pop().content
    else:
        prompt, prefix = split_prompt_prefix(messages[-1].content)
        messages[-1] = Message(messages[-1].role, prompt)
    context = tok.prompt_ids(messages)
    if prefix:
        context += tok.encode(prefix)[0]
    room = None if max_len is None else max_len - len(context)
    if room is not None and room < 1:
        return None
    conts = []
    for turn in (pair.chosen, pair.rejected):
        full = prefix + turn.value
        ids, labels = tok.assistant_tokens(full, start=len(prefix))
        ex = TokenizedExample(np.asarray(ids + tok.end_of_turn, np.int32),
                              np.asarray(labels + tok.end_labels(full), np.int8))  # fmt: skip
        conts.append(ex.cut(room))
    return TokenizedPair(np.asarray(context, np.int32), conts[0], conts[1])
