"""The scripted teacher: the stand-in for the paper's large distillation model.

It writes, for the embedded world's train questions, the three SFT data files of the reference
(SPEC 2.2) and the base reasoner's CoT traces:

    stats = write_teacher_data("runs/world", "runs/teacher", seed=0)   # -> TeacherStats
    print(stats.summary())

- CoT (`cot`): reasoning without tools; right on popular facts, confident wrong guesses on tail
  facts (`knowledge`).
- CoA (`coa`): reasoning with the real BM25 search tool; values are read out of the retrieved
  passages (`reading`), with poor queries, reformulations and distractors now and then.
- Tool use of the base (`tool_use`): a `base_tool_use` share of the CoA trajectories, calls
  included, for the base reasoner (a real base model's occasional tool use).
- CoT+A pairs (`pairs`): where exactly one of CoT / CoA is right, "act" against "do not act"
  after their shared prefix.
- Held-out facts (`guard`): nothing written states a tail fact dev or test questions own; what
  would is searched another way or left out, and counted.
"""

from coa_jax.data.teacher.coa import CoAHabits, CoATeacher
from coa_jax.data.teacher.config import TeacherConfig
from coa_jax.data.teacher.cot import write_cot
from coa_jax.data.teacher.guard import LeakGuard
from coa_jax.data.teacher.knowledge import TeacherWorld
from coa_jax.data.teacher.pairs import Pair, make_pair, shared_prefix
from coa_jax.data.teacher.stats import TeacherStats
from coa_jax.data.teacher.trajectory import Segment, Trajectory
from coa_jax.data.teacher.write import FILES, TeacherRun, run_teachers, score_split, write_teacher_data

__all__ = [
    "CoAHabits",
    "CoATeacher",
    "FILES",
    "LeakGuard",
    "Pair",
    "Segment",
    "TeacherRun",
    "TeacherConfig",
    "TeacherStats",
    "TeacherWorld",
    "Trajectory",
    "make_pair",
    "run_teachers",
    "score_split",
    "shared_prefix",
    "write_cot",
    "write_teacher_data",
]
