"""Reading practice from other worlds (`teacher.extra_worlds`): CoA and skill rows no fact of which
is ever asked about again.

A small model fits the embedded world's CoA rows by memorising their facts: the train questions
ask about a few hundred, and every observation repeats them. At test time the facts it needs are
held out of all training text (only the search corpus states them), so memorising was the wrong
lesson. Worlds built with other seeds have other entities and facts; a row about them can only be
fitted by reading its search results and copying names out of its question, which is the skill
the test asks for. Their rows are CoA trajectories (every fact searched: none of their facts is
the base model's to recall) over all three of their splits, and the base reasoner's query and
reading rows over their train split (the reasoner's budget also holds its pretraining text). Their CoT rows and pairs are not used (they would teach recalling facts the model
was never shown).
"""

from __future__ import annotations

import dataclasses
import os

from coa_jax.data.formats.messages import Conversation, Message
from coa_jax.data.teacher.coa import CoAHabits
from coa_jax.data.teacher.guard import LeakGuard
from coa_jax.data.teacher.skills import write_skills
from coa_jax.data.world.build import build_world
from coa_jax.data.world.store import load_world


@dataclasses.dataclass(frozen=True)
class ExtraRows:
    coa: tuple[Conversation, ...]
    skills: tuple[Conversation, ...]
    dropped: int  # rows left out: their text would state a held-out fact of the main world


def extra_world_seed(main_seed: int, k: int) -> int:
    """The seed of extra world k (0-based) beside a main world built with `main_seed`."""
    return 1_000_003 * (main_seed + 1) + k


def extra_world_rows(out_dir: str | os.PathLike, *, count: int, main_seed: int, size: str, seed: int, style: str,
                     topk: int, habits: CoAHabits, guard: LeakGuard, system: str | None = None) -> ExtraRows:
    """Builds `count` worlds under OUT/extra_worlds/ and writes their rows.

    Args:
      out_dir: the teacher's output directory.
      count: how many extra worlds.
      main_seed / size: the main world's seed and size (extra world k uses `extra_world_seed`).
      seed / style / topk / habits: as for the main world's teacher (`skip_known` is set to 0).
      guard: the main world's held-out facts; a row that would state one is dropped.
      system: a system message before each user prompt.
    """
    from coa_jax.data.teacher.write import run_teachers  # here: write imports this module

    head = (Message("system", system),) if system else ()
    habits = dataclasses.replace(habits, skip_known=0.0)
    coa, skills, dropped = [], [], 0
    for k in range(count):
        path = os.path.join(out_dir, "extra_worlds", f"world-{k}")
        if not os.path.exists(os.path.join(path, "stats.json")):
            build_world(path, seed=extra_world_seed(main_seed, k), size=size, with_tokenizer=False)
        files = load_world(path)
        for split in ("train", "dev", "test"):
            run = run_teachers(files, seed=seed, split=split, style=style, topk=topk, habits=habits, with_pairs=False)
            right = [q for q in run.questions if run.coa[q.id] is not None and run.coa_right[q.id]]
            rows = [Conversation((*head, Message("user", run.prompts[q.id]), Message("assistant", run.coa[q.id].text)))
                    for q in right]  # fmt: skip
            written = write_skills(((q.question, run.prompts[q.id], run.coa[q.id]) for q in right), system=system)
            if split != "train":
                written = dataclasses.replace(written, queries=(), reading=())
            for kind, out in ((rows, coa), ((*written.queries, *written.reading), skills)):
                for c in kind:
                    if guard.stated("\n".join(m.content for m in c.messages)):
                        dropped += 1
                    else:
                        out.append(c)
    return ExtraRows(tuple(coa), tuple(skills), dropped)
