"""Keeps held-out facts out of the text the teacher writes.

Dev and test questions own some tail facts (`coa_jax.data.world.leakage`, rule 3; facts.jsonl
"split"). Text made from train questions, and read by a learner, must state none of them in
leakage's sense (it mentions both ends of the fact). Search observations are part of that text
(SFT stage 3 trains on them), so the CoA teacher checks every observation before it uses a
query: one whose results would state a held-out fact is not used (the teacher searches with
another query, or recalls a popular fact), and a trajectory that still states one is dropped
and counted. Observations are never edited: what a trajectory shows is what the tool returned.
"""

from __future__ import annotations

import dataclasses

from coa_jax.data.world.leakage import MentionIndex
from coa_jax.data.world.store import WorldFiles


@dataclasses.dataclass(frozen=True)
class LeakGuard:
    """The facts text for one split must not state, and the check.

    Attributes:
      index: finds the facts a text states.
      held_out: tail facts owned by splits ranked above the text's split.
    """

    index: MentionIndex
    held_out: frozenset[str]

    @classmethod
    def for_split(cls, files: WorldFiles, split: str, index: MentionIndex) -> LeakGuard:
        return cls(index, files.later_facts(split))

    def stated(self, *texts: str) -> frozenset[str]:
        """The held-out facts that `texts`, read as one text, state."""
        if not self.held_out:
            return frozenset()
        return self.held_out & frozenset(self.index.stated_facts("\n".join(texts)))

    def clean(self, *texts: str) -> bool:
        return not self.stated(*texts)
