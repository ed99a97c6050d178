"""Runs the teachers over a built world and writes the SFT data in the reference formats.

    OUT/CoT_data.jsonl        messages JSONL (user prompt, assistant CoT), right answers only
    OUT/CoA_data.jsonl        messages JSONL (user prompt, assistant CoA), right answers only
    OUT/CoT+A_data.json       contrastive pairs (`{"conversation", "chosen", "rejected"}` array)
    OUT/reasoner_traces.jsonl CoT traces for the base reasoner (with WORLD/pretrain.txt)
    OUT/reasoner_skills.jsonl the base reasoner's query-writing and reading rows (`skills`)
    OUT/reasoner_tool_use.jsonl CoA rows the base reasoner also trains on (`base_tool_use`)
    OUT/extra_worlds/         worlds whose CoA and skill rows join the main world's (`extra_worlds`)
    OUT/teacher_stats.json    `TeacherStats`

Deterministic: one world and one seed give byte-identical files.

No held-out facts: nothing written states a tail fact that dev or test questions own (see
`guard`); trajectories and pairs that would are left out and counted in the stats.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import random
from collections.abc import Mapping, Sequence

from coa_jax.data.formats.contrastive import write_contrastive_json
from coa_jax.data.formats.jsonfile import write_json
from coa_jax.data.formats.messages import Conversation, Message, write_messages_jsonl
from coa_jax.data.teacher.coa import CoAHabits, CoATeacher
from coa_jax.data.teacher.cot import write_cot
from coa_jax.data.teacher.extra_worlds import extra_world_rows
from coa_jax.data.teacher.guard import LeakGuard
from coa_jax.data.teacher.knowledge import TeacherWorld
from coa_jax.data.teacher.pairs import Pair, make_pair
from coa_jax.data.teacher.reasoner import reasoner_traces
from coa_jax.data.teacher.skills import write_skills
from coa_jax.data.teacher.stats import TeacherStats, collect_stats
from coa_jax.data.teacher.trajectory import Trajectory
from coa_jax.data.world.leakage import MentionIndex
from coa_jax.data.world.prompt import user_prompt
from coa_jax.data.world.schema import Question
from coa_jax.data.world.store import WorldFiles, load_world
from coa_jax.env.bm25 import BM25Retriever
from coa_jax.env.rewards import get_reward
from coa_jax.env.search_tool import SearchTool

FILES = {"cot": "CoT_data.jsonl", "coa": "CoA_data.jsonl", "pairs": "CoT+A_data.json",
         "reasoner": "reasoner_traces.jsonl", "skills": "reasoner_skills.jsonl",
         "tool_use": "reasoner_tool_use.jsonl", "stats": "teacher_stats.json"}  # fmt: skip


def _draw(seed: int, key: str) -> float:
    """A uniform draw fixed by the seed and a key (which questions get which variant)."""
    return random.Random(f"{seed}/draw/{key}").random()


@dataclasses.dataclass(frozen=True)
class TeacherRun:
    """Everything the teachers produced for one split, in memory (question order)."""

    questions: tuple[Question, ...]
    prompts: Mapping[str, str]  # question id -> user prompt
    cot: Mapping[str, Trajectory]
    coa: Mapping[str, Trajectory | None]  # None: dropped, it would state a held-out fact
    cot_right: Mapping[str, bool]
    coa_right: Mapping[str, bool]
    pairs: tuple[Pair, ...]
    dropped: Mapping[str, int] = dataclasses.field(default_factory=dict)  # "coa" / "cot" / "pairs" -> count
    cot_held_out: frozenset[str] = frozenset()  # ids of questions whose CoT states a held-out fact
    queries_held_back: int = 0  # queries the CoA teacher did not use: they showed a held-out fact

    def cot_written(self, q: Question) -> bool:
        return q.id not in self.cot_held_out


def run_teachers(files: WorldFiles, *, seed: int = 0, split: str = "train", style: str = "compact",
                 topk: int = 3, habits: CoAHabits = CoAHabits(), wrong_coa_fraction: float = 0.4,
                 with_pairs: bool = True, cache_dir: str | None = None,
                 guard: LeakGuard | None = None) -> TeacherRun:  # fmt: skip
    """Writes CoT and CoA trajectories and pairs for every question of `split`.

    Args:
      files: the loaded world.
      seed: the teachers' seed (guesses, habits, which popular questions get a wrong variant).
      split: the question split.
      style: the instruction style of the user prompt ("compact" or "reference").
      topk: results per search (the rollout's search tool must use the same).
      habits: the CoA teacher's habits.
      wrong_coa_fraction: share of popular questions that get a wrong CoA variant for a pair
        where not acting is chosen.
      with_pairs: also write the partner trajectories of contrastive pairs.
      cache_dir: where the BM25 index is cached (default: beside the corpus).
      guard: the facts no trajectory or pair may state (None: no check, for scoring only).
    """
    tw = TeacherWorld(files, seed)
    tool = SearchTool(BM25Retriever(files.corpus_path, cache_dir=cache_dir), topk=topk)
    coa_teacher = CoATeacher(tw, tool, habits, guard)
    reward = get_reward("autocoa")
    questions = files.questions(split)
    prompts, cot, coa, cot_right, coa_right, pairs = {}, {}, {}, {}, {}, []
    cot_held_out, pairs_dropped = set(), 0
    for q in questions:
        prompts[q.id] = user_prompt(q.question, style)
        cot[q.id] = write_cot(q, tw)
        if guard is not None and not guard.clean(q.question, cot[q.id].text):
            cot_held_out.add(q.id)
        coa[q.id] = coa_teacher.write(q)
        cot_right[q.id] = reward(cot[q.id].text, list(q.golds)) > 0
        coa_right[q.id] = coa[q.id] is not None and reward(coa[q.id].text, list(q.golds)) > 0
        partner = _pair_partner(coa_teacher, q, seed, wrong_coa_fraction) if with_pairs else None
        if partner is not None and q.id not in cot_held_out:
            pair = make_pair(prompts[q.id], cot[q.id], partner, functools.partial(reward, gold=list(q.golds)))
            if pair is not None and guard is not None and not guard.clean(pair.prompt, pair.prefix, pair.chosen,
                                                                           pair.rejected):  # fmt: skip
                pairs_dropped += 1
            elif pair is not None:
                pairs.append(pair)
    dropped = {"coa": coa_teacher.dropped["main"], "cot": len(cot_held_out),
               "pairs": pairs_dropped + coa_teacher.dropped["pair"] + coa_teacher.dropped["wrong"]}  # fmt: skip
    return TeacherRun(questions, prompts, cot, coa, cot_right, coa_right, tuple(pairs), dropped,
                      frozenset(cot_held_out), sum(coa_teacher.held_back.values()))  # fmt: skip


def _pair_partner(teacher: CoATeacher, q: Question, seed: int, wrong_fraction: float) -> Trajectory | None:
    """The CoA trajectory to pair with the CoT one: on tail questions, one that recalls every
    popular fact and searches the rest; on a `wrong_fraction` of popular questions, one that
    searches a known fact and believes a distractor; else None."""
    if q.tier == "tail":
        return teacher.write(q, variant="pair", skip_known=1.0)
    if _draw(seed, q.id) < wrong_fraction:
        at = int(_draw(seed, q.id + "/step") * len(q.steps))
        return teacher.write(q, variant="wrong", skip_known=1.0, follow_distractor_at=at)
    return None


def _conversation(prompt: str, trajectory: Trajectory, system: str | None) -> Conversation:
    head = (Message("system", system),) if system else ()
    return Conversation((*head, Message("user", prompt), Message("assistant", trajectory.text)))


def write_teacher_data(world_dir: str | os.PathLike, out_dir: str | os.PathLike, seed: int = 0, *,
                       style: str = "compact", topk: int = 3, habits: CoAHabits = CoAHabits(),
                       wrong_coa_fraction: float = 0.4, keep_wrong: bool = False, base_tool_use: float = 0.0,
                       extra_worlds: int = 0, count_tokens: bool = True,
                       system: str | None = None) -> TeacherStats:  # fmt: skip
    """Runs the teachers on the world's train questions and writes the files listed above.

    Args:
      world_dir: a directory written by `coa_jax.data.world.build_world`.
      out_dir: where to write (created).
      seed: the teachers' seed.
      style: instruction style of the prompts ("compact": a few dozen tokens; "reference").
      topk: results per search.
      habits: the CoA teacher's habits.
      wrong_coa_fraction: share of popular questions given a wrong CoA variant (pairs).
      keep_wrong: also write CoT / CoA trajectories that reached a wrong answer.
      base_tool_use: share of train questions (drawn by the seed) whose right CoA trajectory with at
        least one search is also written for the base reasoner (`reasoner_tool_use.jsonl`).
      extra_worlds: worlds of the same size, other seeds, whose CoA and skill rows are added
        (`coa_jax.data.teacher.extra_worlds`).
      count_tokens: measure lengths with the world's tokenizer (needs WORLD/tokenizer).
      system: a system message to put before the user prompt (the reference files have none, and
        neither do the world's RL prompt files).

    Returns:
      The statistics (also written to teacher_stats.json).
    """
    files = load_world(world_dir)
    world = TeacherWorld(files, seed).world
    index = MentionIndex(world)
    guard = LeakGuard.for_split(files, "train", index)
    run = run_teachers(files, seed=seed, style=style, topk=topk, habits=habits,
                       wrong_coa_fraction=wrong_coa_fraction, guard=guard)  # fmt: skip
    os.makedirs(out_dir, exist_ok=True)
    qs = run.questions
    cot_rows = [_conversation(run.prompts[q.id], run.cot[q.id], system)
                for q in qs if run.cot_written(q) and (keep_wrong or run.cot_right[q.id])]  # fmt: skip
    coa_rows = [_conversation(run.prompts[q.id], run.coa[q.id], system)
                for q in qs if run.coa[q.id] is not None and (keep_wrong or run.coa_right[q.id])]  # fmt: skip
    pair_rows = [p.to_contrastive(system) for p in run.pairs]
    traces = reasoner_traces(((q, run.prompts[q.id], run.cot[q.id]) for q in qs), world, index,
                             system=system)  # fmt: skip
    skills = write_skills(((q.question, run.prompts[q.id], run.coa[q.id]) for q in qs
                           if run.coa[q.id] is not None and run.coa_right[q.id]), system=system)  # fmt: skip
    skill_rows = (*skills.queries, *skills.reading)
    extra = extra_world_rows(out_dir, count=extra_worlds, main_seed=int(files.stats["seed"]),
                             size=str(files.stats["size"]), seed=seed, style=style, topk=topk, habits=habits,
                             guard=guard, system=system)  # fmt: skip
    coa_rows, skill_rows = [*coa_rows, *extra.coa], (*skill_rows, *extra.skills)
    tool_use_rows = [_conversation(run.prompts[q.id], run.coa[q.id], system) for q in qs
                     if run.coa[q.id] is not None and run.coa_right[q.id] and run.coa[q.id].searches
                     and _draw(seed, q.id + "/base_tool_use") < base_tool_use]  # fmt: skip
    # the guarantee, checked on what a learner reads, record by record
    records = [_text(c) for c in (*cot_rows, *coa_rows, *traces.conversations, *skill_rows, *tool_use_rows)]
    records += ["\n".join((*(t.value for t in p.conversation), p.chosen.value, p.rejected.value)) for p in pair_rows]
    stated = set().union(*(guard.stated(r) for r in records)) if records else set()
    if stated:
        raise RuntimeError(f"teacher data would state held-out facts: {sorted(stated)[:10]}")
    write_messages_jsonl(os.path.join(out_dir, FILES["cot"]), cot_rows)
    write_messages_jsonl(os.path.join(out_dir, FILES["coa"]), coa_rows)
    write_contrastive_json(os.path.join(out_dir, FILES["pairs"]), pair_rows)
    write_messages_jsonl(os.path.join(out_dir, FILES["reasoner"]), traces.conversations)
    write_messages_jsonl(os.path.join(out_dir, FILES["skills"]), skill_rows)
    write_messages_jsonl(os.path.join(out_dir, FILES["tool_use"]), tool_use_rows)
    tokenizer = _world_tokenizer(files) if count_tokens else None
    stats = collect_stats(run, files, index, seed=seed, style=style, topk=topk, habits=habits,
                          base_tool_use=(base_tool_use, len(tool_use_rows)),
                          extra=(extra_worlds, len(extra.coa), len(extra.skills), extra.dropped),
                          rows=(len(cot_rows), len(coa_rows)),
                          traces=traces, tokenizer=tokenizer, held_out=guard.held_out)  # fmt: skip
    write_json(os.path.join(out_dir, FILES["stats"]), stats.to_json())
    return stats


def _text(c: Conversation) -> str:
    return "\n".join(m.content for m in c.messages)


def _world_tokenizer(files: WorldFiles):
    path = os.path.join(files.tokenizer_dir, "tokenizer.json")
    if not os.path.exists(path):
        return None
    from tokenizers import Tokenizer

    return Tokenizer.from_file(path)


def score_split(files: WorldFiles, split: str, *, seed: int = 0, topk: int = 3,
                habits: CoAHabits = CoAHabits()) -> Sequence[tuple[Question, bool, bool]]:  # fmt: skip
    """(question, CoT right, CoA right) for every question of `split` (no files written)."""
    run = run_teachers(files, seed=seed, split=split, topk=topk, habits=habits, with_pairs=False)
    return [(q, run.cot_right[q.id], run.coa_right[q.id]) for q in run.questions]
