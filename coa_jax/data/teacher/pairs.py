"""CoT+A contrastive pairs (SFT stage 1: *when* to act), built as SPEC 2.2 says.

Where exactly one of a CoT and a CoA trajectory of the same question reached the right answer,
both are cut at their longest shared prefix (at a line end) and the two continuations are paired:
"continue with an action" (the CoA side, which starts with `<begin_search>`) against "continue
without" (the CoT side). The one that reached the right answer is chosen.

- Tail questions: the CoT guesses, the CoA searches; with the CoA teacher recalling every popular
  fact (`skip_known=1`), both agree up to the first fact the teacher does not know, so the pair's
  context ends exactly where searching starts to matter. The action is chosen.
- Popular questions: the CoT is right; a CoA variant searches one known fact and believes a result
  about another entity (`follow_distractor_at`). Not acting is chosen.

The context goes in the human turn after the prompt, as in the reference file
(`"value": prompt + prefix`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from coa_jax.data.formats.contrastive import ContrastivePair, Turn
from coa_jax.data.teacher.trajectory import Trajectory
from coa_jax.env.tags import SEARCH_SPEC

Score = Callable[[str], float]


@dataclasses.dataclass(frozen=True)
class Pair:
    """A contrastive pair before it is written: prompt, shared prefix, two continuations."""

    question_id: str
    prompt: str
    prefix: str
    chosen: str
    rejected: str
    action_chosen: bool

    def to_contrastive(self, system: str | None = None) -> ContrastivePair:
        """The reference record; the context (prompt + prefix) is the human turn."""
        head = (Turn("system", system),) if system else ()
        return ContrastivePair(conversation=(*head, Turn("human", self.prompt + self.prefix)),
                               chosen=Turn("gpt", self.chosen), rejected=Turn("gpt", self.rejected))  # fmt: skip


def shared_prefix(a: str, b: str) -> str:
    """The longest common prefix of `a` and `b` that ends at a line end ("" if none)."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return a[: a.rfind("\n", 0, n) + 1]


def make_pair(prompt: str, cot: Trajectory, coa: Trajectory, score: Score) -> Pair | None:
    """The pair of `cot` and `coa`, or None unless exactly one is right and they split into
    "act" (the CoA continuation starts with the action) against "do not act".

    Args:
      prompt: the user message both answered.
      cot: the trajectory without tools.
      coa: the trajectory with search.
      score: full response text -> reward (1.0 right).
    """
    cot_right, coa_right = score(cot.text) > 0, score(coa.text) > 0
    if cot_right == coa_right:
        return None
    prefix = shared_prefix(cot.text, coa.text)
    act, rest = coa.text[len(prefix):], cot.text[len(prefix):]
    if not prefix or not act.startswith(SEARCH_SPEC.open_tag) or SEARCH_SPEC.open_tag in rest:
        return None
    chosen, rejected = (act, rest) if coa_right else (rest, act)
    return Pair(cot.question_id, prompt, prefix, chosen, rejected, action_chosen=coa_right)
