"""teacher.extra_worlds: CoA and skill rows from worlds with other seeds join the main world's."""

from __future__ import annotations

import os

from test_data_teacher_fixtures import tiny_teacher, tiny_world_dir

from coa_jax.data.formats import extract_question, read_messages_jsonl
from coa_jax.data.teacher import FILES, write_teacher_data
from coa_jax.data.world import load_world
from coa_jax.env.tags import SEARCH_SPEC


def _rows(out, name):
    return read_messages_jsonl(os.path.join(out, FILES[name])).rows


def test_extra_world_rows_join_the_main_worlds_and_search_every_fact(tmp_path):
    main_out, main = tiny_teacher()
    stats = write_teacher_data(tiny_world_dir(), tmp_path, seed=0, extra_worlds=1, count_tokens=False)
    extra_world = load_world(tmp_path / "extra_worlds" / "world-0")
    assert extra_world.stats["size"] == "tiny" and extra_world.stats["seed"] != load_world(tiny_world_dir()).stats["seed"]

    main_coa = {c.messages[0].content: c for c in _rows(main_out, "coa")}
    coa = _rows(tmp_path, "coa")
    extra = [c for c in coa if c.messages[0].content not in main_coa]
    assert stats.extra_rows["coa"] == len(extra) == len(coa) - len(main_coa) > 0
    # its questions come from all three of the extra world's splits, and every fact is searched for
    extra_questions = {q.question: split for split in ("train", "dev", "test") for q in extra_world.questions(split)}
    assert {extra_questions[extract_question(c.messages[0].content)] for c in extra} == {"train", "dev", "test"}
    assert all(SEARCH_SPEC.open_tag in c.messages[-1].content for c in extra)
    # skill rows: the main world's plus the extra world's train split; CoT rows and pairs: the main world's only
    assert len(_rows(tmp_path, "skills")) == len(_rows(main_out, "skills")) + stats.extra_rows["skills"]
    assert len(_rows(tmp_path, "cot")) == len(_rows(main_out, "cot")) and stats.pair_rows == main.pair_rows
    # deterministic: the same call writes the same files
    again = write_teacher_data(tiny_world_dir(), tmp_path / "again", seed=0, extra_worlds=1, count_tokens=False)
    assert again.extra_rows == stats.extra_rows
    for name in ("coa", "skills"):
        assert (tmp_path / FILES[name]).read_bytes() == (tmp_path / "again" / FILES[name]).read_bytes()
