"""Bad input: a clear error, a counted skip or a bounded truncation, never a hang.

Degenerate model output (a megabyte of action tags never closed) parses in linear time; the
parser's shortcut is checked against plain `str.find` by fuzzing; empty answers earn nothing and
empty gold answers are dropped or refused; the loop's new options fail config validation by name.
"""

import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings, strategies as st

from coa_jax.config.errors import ConfigError
from coa_jax.config.loading import load_config
from coa_jax.data.formats import DataError, read_verl_parquet
from coa_jax.env import tags
from coa_jax.env.client import ClientConfig
from coa_jax.env.rewards import get_reward
from coa_jax.env.search_tool import SearchTool
from coa_jax.env.tags import CALC_SPEC, SEARCH_SPEC, ActionParser

PARSER = ActionParser([SEARCH_SPEC, CALC_SPEC])
PIECES = ["<begin_search>", "</end_search>", "<begin_calc>", "</end_calc>", "<search_result>", "</search_result>",
          "<calc_result>", "</calc_result>", "</think>", " q", "x", "\n"]


def test_a_megabyte_of_unclosed_action_tags_parses_in_linear_time():
    """Each opening tag used to rescan to the end for its closing tag: ~a minute for this text."""
    text = "<begin_search> q " * 64_000  # 1.1 MB, no closing tag anywhere
    start = time.perf_counter()
    actions = PARSER.find_actions(text, include_unclosed=True)
    assert PARSER.parse_action(text) is None
    assert time.perf_counter() - start < 5.0
    assert len(actions) == 1 and not actions[0].closed and actions[0].start == len(text) - len("<begin_search> q ")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=60).map("".join))
def test_parser_shortcut_equals_plain_find(text):
    fast = [PARSER.find_actions(text, include_unclosed=u) for u in (False, True)]
    original = tags._ForwardFinder.__call__
    tags._ForwardFinder.__call__ = lambda self, tag, start: self.text.find(tag, start)
    try:
        slow = [PARSER.find_actions(text, include_unclosed=u) for u in (False, True)]
    finally:
        tags._ForwardFinder.__call__ = original
    assert fast == slow


@pytest.mark.parametrize("name", ["autocoa", "em", "f1"])
def test_empty_or_missing_answers_earn_nothing(name):
    reward = get_reward(name)
    for solution in ("", "<think>\nno idea\n</think>\n\n", "<think>\nx\n</think>\n\n\\boxed{}",
                     "<think>\n<begin_search> q", "\\boxed{" * 1000):
        assert reward(solution, ["Paris"]) == 0.0, solution[:40]


def _parquet(path, golds):
    rows = [{"data_source": "nq", "prompt": [{"role": "user", "content": f"Q{i}?"}],
             "reward_model": {"ground_truth": g, "style": "rule"}} for i, g in enumerate(golds)]
    pq.write_table(pa.Table.from_pylist(rows), path)


def test_empty_gold_answers_are_dropped_or_the_row_refused(tmp_path):
    """An empty gold would make exact match reward an empty answer with 1.0."""
    path = tmp_path / "golds.parquet"
    _parquet(path, [["Paris", " "], ["Rome"], [""], ["  "]])
    with pytest.raises(DataError, match=r"golds\.parquet row 3: reward_model\.ground_truth: empty"):
        read_verl_parquet(path)
    lenient = read_verl_parquet(path, strict=False)
    assert [r.golds for r in lenient.rows] == [("Paris",), ("Rome",)]
    assert lenient.skipped == {"reward_model.ground_truth: empty": 2}
    _parquet(path, ["Paris<ans_split>"])
    assert read_verl_parquet(path).rows[0].golds == ("Paris",)


@pytest.mark.parametrize("override, key", [
    ("sft2.loop.spike_factor=0.5", "sft2.loop.spike_factor"),
    ("rl.loop.max_spikes=-1", "rl.loop.max_spikes"),
    ("sft1.loop.log_every=0", "sft1.loop.log_every"),
    ("teacher.base_tool_use=1.5", "teacher.base_tool_use"),
    ("teacher.extra_worlds=-1", "teacher.extra_worlds"),
    ("teacher.habits.poor_query=2", "teacher.habits.poor_query"),
    ("teacher.habits.max_queries=0", "teacher.habits.max_queries"),
])
def test_new_loop_options_are_validated_by_name(override, key):
    with pytest.raises(ConfigError) as err:
        load_config("configs/default.py:tiny", [override])
    assert key in str(err.value)


def test_tool_limits_are_validated():
    with pytest.raises(ValueError, match="max_response_bytes"):
        ClientConfig(base_url="http://127.0.0.1:1", max_response_bytes=0)
    with pytest.raises(ValueError, match="max_query_chars"):
        SearchTool(backend=None, max_query_chars=0)


def test_a_world_or_teacher_data_built_under_other_settings_is_refused(tmp_path, caplog):
    """A rerun into the same --out with another world size, seed, prompt style or top-k used to
    reuse the data built the first time, silently; now it is refused, naming each key."""
    import json

    from coa_jax.train import workspace

    cfg = load_config("configs/default.py:tiny")  # world size tiny, seed 0, compact prompts, top-3
    world = tmp_path / "world"
    world.mkdir()
    (world / "stats.json").write_text(json.dumps({"size": "small", "seed": 0}))
    with pytest.raises(ConfigError) as err:
        workspace.world_dir(cfg, tmp_path)
    assert [key for key, _ in err.value.problems] == ["world.size"]
    assert "size='small', this run asks for 'tiny'" in str(err.value)

    teacher = tmp_path / "world_teacher"
    teacher.mkdir()
    (teacher / "teacher_stats.json").write_text(json.dumps({"seed": 0, "style": "reference", "topk": 5}))
    with pytest.raises(ConfigError) as err:
        workspace.teacher_dir(cfg, world)
    assert sorted(key for key, _ in err.value.problems) == ["env.topk", "world.prompt_style"]

    # matching settings pass; a field an older version did not record is not checked, with a warning
    (world / "stats.json").write_text(json.dumps({"size": "tiny", "seed": 0}))
    (teacher / "teacher_stats.json").write_text(json.dumps({"seed": 0, "style": "compact"}))
    assert workspace.world_dir(cfg, tmp_path) == world
    assert workspace.teacher_dir(cfg, world) == teacher
    assert "does not record env.topk" in caplog.text
