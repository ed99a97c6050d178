"""Readers and writers of the reference formats: round trips, strict errors, lenient counts."""

from __future__ import annotations

import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coa_jax.data.formats import (
    ContrastivePair,
    Conversation,
    DataError,
    Message,
    QAPrompt,
    Turn,
    extract_question,
    read_contrastive_json,
    read_messages_jsonl,
    read_verl_parquet,
    resolve_dataset,
    write_contrastive_json,
    write_messages_jsonl,
    write_verl_parquet,
)

REFERENCE_MARKER = "Now, please answer the user's question below: \n"


def _conversation(i: int) -> Conversation:
    return Conversation((
        Message("user", f"question {i}? é"),
        Message("assistant", f"<think>\n<begin_search> q{i} </end_search>\n\n<search_result> r </search_result>\n"
                             f"</think>\n\nAnswer.\n\n\\boxed{{{i}}}"),
    ))  # fmt: skip


def _prompt(i: int, golds: tuple[str, ...], extra: dict) -> QAPrompt:
    text = f"Instruction text.\n\n{REFERENCE_MARKER}Question number {i}?\n\n"
    return QAPrompt("HotpotQA", (Message("user", text),), golds, index=i, split="test", extra=extra)


# ---------------- messages JSONL ----------------


def test_messages_round_trip(tmp_path):
    rows = [_conversation(i) for i in range(5)]
    path = tmp_path / "coa.jsonl"
    assert write_messages_jsonl(path, rows) == 5
    result = read_messages_jsonl(path)
    assert result.rows == tuple(rows) and not result.skipped


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["system", "user", "assistant", "tool"]), st.text()), min_size=1, max_size=4))
def test_messages_round_trip_any_text(tmp_path_factory, turns):
    rows = [Conversation(tuple(Message(role, content) for role, content in turns))]
    path = tmp_path_factory.mktemp("msgs") / "any.jsonl"
    write_messages_jsonl(path, rows)
    assert read_messages_jsonl(path).rows == tuple(rows)


def _write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def test_messages_strict_truncated_line_names_file_and_row(tmp_path):
    good = json.dumps(_conversation(0).to_json())
    path = tmp_path / "train.jsonl"
    _write_lines(path, [good] * 16 + [good[: len(good) // 2]] + [good])
    with pytest.raises(DataError) as err:
        read_messages_jsonl(path)
    assert str(err.value).endswith("train.jsonl row 17: truncated JSON")
    assert err.value.row == 17 and err.value.reason == "truncated JSON"


@pytest.mark.parametrize(
    "row, reason",
    [
        ({"messages": [{"role": "user", "content": 3}]}, "messages[].content: expected str, got int"),
        ({"messages": "hello"}, "messages: expected list, got str"),
        ({"msgs": []}, "missing messages"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "messages[].role: unknown role"),
        ([1, 2], "row: expected object, got list"),
    ],
)
def test_messages_strict_wrong_types(tmp_path, row, reason):
    path = tmp_path / "bad.jsonl"
    _write_lines(path, [json.dumps(_conversation(0).to_json()), json.dumps(row)])
    with pytest.raises(DataError, match=re.escape(f"bad.jsonl row 2: {reason}")):
        read_messages_jsonl(path)


def test_messages_lenient_skips_and_counts(tmp_path):
    good = json.dumps(_conversation(1).to_json())
    path = tmp_path / "mixed.jsonl"
    _write_lines(path, [good, good[:-5], "", json.dumps({"messages": [{"role": "user"}]}), good, "{not json}"])
    result = read_messages_jsonl(path, strict=False)
    assert len(result.rows) == 2
    assert result.skipped == {"truncated JSON": 1, "missing messages[].content": 1, "invalid JSON": 1}
    assert "2 rows, 3 skipped" in result.summary()


# ---------------- CoT+A contrastive JSON ----------------


def _pair(i: int) -> ContrastivePair:
    return ContrastivePair(
        conversation=(Turn("human", f"prompt {i}"),),
        chosen=Turn("gpt", f"<think>\nso far <begin_search> x{i} </end_search>"),
        rejected=Turn("gpt", "<think>\nso far I guess.\n</think>\n\n\\boxed{no}"),
    )


def test_contrastive_round_trip(tmp_path):
    pairs = [_pair(i) for i in range(4)]
    path = tmp_path / "cot_a.json"
    assert write_contrastive_json(path, pairs) == 4
    assert read_contrastive_json(path).rows == tuple(pairs)
    assert json.loads(path.read_text())[0]["chosen"]["from"] == "gpt"


def test_contrastive_strict_and_lenient_bad_records(tmp_path):
    no_chosen = {"conversation": [{"from": "human", "value": "p"}], "rejected": {"from": "gpt", "value": "r"}}
    records = [_pair(0).to_json(), no_chosen, _pair(2).to_json()]
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    with pytest.raises(DataError, match=r"pairs\.json row 2: missing chosen"):
        read_contrastive_json(path)
    result = read_contrastive_json(path, strict=False)
    assert len(result.rows) == 2 and result.skipped == {"missing chosen": 1}


def test_contrastive_truncated_file_keeps_earlier_records(tmp_path):
    text = json.dumps([_pair(i).to_json() for i in range(3)])
    path = tmp_path / "cut.json"
    path.write_text(text[: len(text) - 30], encoding="utf-8")
    with pytest.raises(DataError, match=r"cut\.json row 3: truncated JSON"):
        read_contrastive_json(path)
    result = read_contrastive_json(path, strict=False)
    assert result.rows == (_pair(0), _pair(1)) and result.skipped == {"truncated JSON": 1}


def test_contrastive_not_an_array(tmp_path):
    path = tmp_path / "obj.json"
    path.write_text('{"conversation": 1', encoding="utf-8")
    with pytest.raises(DataError, match="row 1: truncated JSON"):
        read_contrastive_json(path)


# ---------------- verl parquet ----------------


@pytest.mark.parametrize("ground_truth", ["list", "str"])
def test_verl_round_trip(tmp_path, ground_truth):
    prompts = [
        _prompt(0, ("Herman Wouk",), {"id": "dev_1", "source_file": "NQ_dev.json"}),
        _prompt(1, ("yes",), {"id": "dev_2", "source_file": "2WIKI_dev.json"}),
        _prompt(2, ("UK", "United Kingdom"), {"id": "dev_3", "source_file": "MuSiQue_dev.json"}),
    ]
    path = tmp_path / "eval.parquet"
    assert write_verl_parquet(path, prompts, ground_truth=ground_truth) == 3
    result = read_verl_parquet(path)
    assert result.rows == tuple(prompts)
    assert [p.dataset for p in result.rows] == ["nq", "2wiki", "musique"]
    assert [p.question for p in result.rows] == ["Question number 0?", "Question number 1?", "Question number 2?"]
    assert result.rows[0].id == "dev_1"
    gt_type = pq.read_schema(path).field("reward_model").type.field("ground_truth").type
    assert gt_type == (pa.list_(pa.string()) if ground_truth == "list" else pa.string())


def _write_rows(path, rows: list[dict]) -> None:
    pq.write_table(pa.Table.from_pylist(rows), path)


def _raw_row(i: int, ground_truth) -> dict:
    return {
        "_id": f"id{i}",
        "data_source": "HotpotQA",
        "prompt": [{"content": f"{REFERENCE_MARKER}Q{i}?", "role": "user"}],
        "ability": "QA",
        "reward_model": {"ground_truth": ground_truth, "style": "rule"},
        "extra_info": {"index": i, "split": "dev"},
    }


def test_verl_string_gold_with_separator_and_no_source_file(tmp_path):
    path = tmp_path / "hotpot.parquet"
    _write_rows(path, [_raw_row(0, "Paris<ans_split>City of Paris")])
    (row,) = read_verl_parquet(path).rows
    assert row.golds == ("Paris", "City of Paris") and row.dataset == "hotpotqa" and row.id == "id0"


def test_verl_missing_ground_truth_strict_and_lenient(tmp_path):
    rows = [_raw_row(0, ["a"]), _raw_row(1, ["b"]), _raw_row(2, ["c"])]
    rows[2]["reward_model"] = {"ground_truth": None, "style": "rule"}
    path = tmp_path / "eval.parquet"
    _write_rows(path, rows)
    with pytest.raises(DataError) as err:
        read_verl_parquet(path)
    assert str(err.value).endswith("eval.parquet row 3: missing reward_model.ground_truth")
    result = read_verl_parquet(path, strict=False)
    assert len(result.rows) == 2 and result.skipped == {"missing reward_model.ground_truth": 1}


def test_verl_wrong_types(tmp_path):
    path = tmp_path / "ints.parquet"
    _write_rows(path, [_raw_row(0, 42), _raw_row(1, 7)])
    reason = "reward_model.ground_truth: expected str or list, got int"
    with pytest.raises(DataError, match=re.escape(f"ints.parquet row 1: {reason}")):
        read_verl_parquet(path)
    assert read_verl_parquet(path, strict=False).skipped == {reason: 2}
    rows = [_raw_row(0, ["a"])]
    rows[0]["prompt"] = "not a list"
    _write_rows(path, rows)
    with pytest.raises(DataError, match="row 1: prompt: expected list, got str"):
        read_verl_parquet(path)


def test_verl_missing_column_and_unreadable_file(tmp_path):
    path = tmp_path / "nocol.parquet"
    row = _raw_row(0, ["a"])
    del row["reward_model"]
    _write_rows(path, [row])
    with pytest.raises(DataError, match="row 1: missing reward_model"):
        read_verl_parquet(path)
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="junk.parquet: not a readable parquet file"):
        read_verl_parquet(junk)


def test_dataset_names_and_question_extraction():
    assert resolve_dataset("HotpotQA", "TriviaQA_dev.json") == "triviaqa"
    assert resolve_dataset("HotpotQA", "Bamboogle_dev.json") == "bamboogle"
    assert resolve_dataset("HotpotQA") == "hotpotqa"
    assert resolve_dataset("coa_world", "2wiki_test.json") == "2wiki"
    assert extract_question(f"rules\n{REFERENCE_MARKER}Who?\n\n") == "Who?"
    assert extract_question("rules\n\nQuestion:\nWhere is X based?\n") == "Where is X based?"
    assert extract_question("just a question") == "just a question"
