"""The stages the recipe trains and the table rows it evaluates (SPEC section 3, Table 1).

Each stage names the stage its weights start from, so the plan is a small DAG that the runner
walks in order; a stage whose run directory is finished is reused, an unfinished one resumes.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str  # run directory name
    kind: str  # "sft" or "rl"
    arg: str  # sft: reasoner | 1 | 2 | 3; rl: sim | real | schedule
    init: str  # the stage whose weights it starts from ("" = random init)


@dataclasses.dataclass(frozen=True)
class Row:
    label: str  # as in SPEC's Table 1 (our reasoner stands in for R1-Distill)
    stage: str  # whose weights are evaluated
    mode: str  # model-only | workflow | agent
    rl_stage: str = ""  # the RL stage whose real tool calls the row reports


STAGES = (
    Stage("reasoner", "sft", "reasoner", ""),
    Stage("sft1", "sft", "1", "reasoner"),
    Stage("sft2", "sft", "2", "reasoner"),
    Stage("sft12", "sft", "2", "sft1"),
    Stage("sft123", "sft", "3", "sft12"),
    Stage("rl2_only", "rl", "real", "reasoner"),
    Stage("sft123_rl1", "rl", "sim", "sft123"),
    Stage("sft123_rl12", "rl", "schedule", "sft123"),
    Stage("sft12_rl2", "rl", "real", "sft12"),
)

ROWS = (
    Row("Reasoner alone", "reasoner", "model-only"),
    Row("Reasoner + workflow", "reasoner", "workflow"),
    Row("SFT-1", "sft1", "agent"),
    Row("SFT-2", "sft2", "agent"),
    Row("SFT-1+2", "sft12", "agent"),
    Row("SFT-1+2+3", "sft123", "agent"),
    Row("RL-2 only (no SFT)", "rl2_only", "agent", "rl2_only"),
    Row("SFT-1+2+3 + RL-1", "sft123_rl1", "agent", "sft123_rl1"),
    Row("SFT-1+2+3 + RL-1+2", "sft123_rl12", "agent", "sft123_rl12"),
    Row("SFT-1+2 + RL-2", "sft12_rl2", "agent", "sft12_rl2"),
)

MULTI_HOP = ("hotpotqa", "2wiki", "musique", "bamboogle")
SINGLE_HOP = ("nq", "triviaqa")
