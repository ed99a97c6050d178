"""The teacher's settings in a run's config (the `teacher` section)."""

from __future__ import annotations

import dataclasses

from coa_jax.data.teacher.coa import CoAHabits


@dataclasses.dataclass(frozen=True)
class TeacherConfig:
    """What the scripted teacher writes (`coa_jax.data.teacher.write_teacher_data`)."""

    habits: CoAHabits = CoAHabits()
    # Share of train questions whose (right) CoA trajectory the base reasoner also trains on, search
    # calls included. A real base model has seen tool-using transcripts and follows a prompt that
    # describes a tool now and then; a reasoner that never has puts ~0 probability on the call
    # token, so neither SFT-1's contrastive push nor RL without SFT can make it act. Off by default:
    # at 0.1 on the default world SFT-1 searches (0.94 calls a question) but reads poorly (all-set EM
    # 4.5), and the base searches in 1.6% of rollouts, which 12 GRPO steps do not raise.
    base_tool_use: float = 0.0
    # Other worlds (same size, other seeds) whose CoA and skill rows join the main world's: reading
    # practice on facts no question ever asks about again (`coa_jax.data.teacher.extra_worlds`). Off
    # by default: with 1 on the default world, the reasoner's fixed budget covers its own world's
    # text less (model-alone popular EM 10.3, against 19-40 without) and every row falls with it.
    extra_worlds: int = 0

    def errors(self) -> list[tuple[str, str]]:
        out = []
        if not 0 <= self.base_tool_use <= 1:
            out.append(("base_tool_use", f"must be in [0, 1], got {self.base_tool_use}"))
        if self.extra_worlds < 0:
            out.append(("extra_worlds", f"must be >= 0, got {self.extra_worlds}"))
        return out
