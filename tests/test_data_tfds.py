"""TFDS ArrayRecord question sets (no TensorFlow), public benchmark readers, resumable iteration."""

from __future__ import annotations

import csv
import importlib.util
import json
import os

import pytest

from test_data_teacher_fixtures import tiny_world, tiny_world_dir

from coa_jax.data.formats import DataError, QAPrompt, Message, write_verl_parquet
from coa_jax.data.tfds import (QADataset, QARecord, ResumableIterator, benchmark_qa, find_files, read_benchmark,
                               split_of, verl_qa, world_questions)  # fmt: skip
from coa_jax.data.world.prompt import user_prompt


def test_no_tensorflow_needed():
    assert importlib.util.find_spec("tensorflow") is None


@pytest.fixture(scope="module")
def world_ds(tmp_path_factory):
    return world_questions(tiny_world_dir(), style="compact", data_dir=tmp_path_factory.mktemp("tfds_world"))


def test_world_questions_keep_order_and_fields(world_ds):
    files = tiny_world()
    for split in ("train", "dev", "test"):
        source, questions = world_ds.splits[split], files.questions(split)
        assert len(source) == len(questions)
        for i in (0, len(questions) // 2, len(questions) - 1):
            r, q = source[i], questions[i]
            assert (r.id, r.question, r.golds, r.dataset, r.split, r.type, r.hops, r.tier) == (
                q.id, q.question, q.golds, q.dataset, q.split, q.type, q.hops, q.tier)
            assert r.prompt == (Message("user", user_prompt(q.question, "compact")),)
    assert [r.id for r in world_ds.splits["dev"].__getitems__([2, 0])] == [files.questions("dev")[i].id for i in (2, 0)]
    with pytest.raises(IndexError):
        world_ds.splits["dev"][len(world_ds.splits["dev"])]


def test_prepared_once_and_reopened(world_ds, tmp_path):
    info = os.path.join(world_ds.path, "dataset_info.json")
    stamp = os.path.getmtime(info)
    again = world_questions(tiny_world_dir(), style="compact", data_dir=os.path.dirname(os.path.dirname(
        os.path.dirname(world_ds.path))))  # fmt: skip
    assert again.path == world_ds.path and os.path.getmtime(info) == stamp
    opened = QADataset.open(world_ds.path)
    assert opened.splits["test"][3] == world_ds.splits["test"][3]
    other = world_questions(tiny_world_dir(), style="reference", data_dir=tmp_path)
    assert other.path != world_ds.path and other.splits["train"][0].prompt[0].content.startswith("You are")


def test_verl_parquet(tmp_path):
    files = tiny_world()
    rows = [QAPrompt("hotpotqa", (Message("user", "Question:\nWho wrote X?\n"),), ("A", "B"), index=0, split="train",
                     extra={"_id": "abc", "level": "hard"}),
            QAPrompt("HotpotQA", (Message("user", "Question:\nWhere?\n"),), ("Paris",), index=1, split="test",
                     extra={"_id": None, "source_file": "NQ_dev.json"})]  # fmt: skip
    write_verl_parquet(tmp_path / "ref.parquet", rows, ground_truth="str")
    ds = verl_qa({"train": files.parquet_path("train"), "test": tmp_path / "ref.parquet"}, data_dir=tmp_path / "t")
    first = ds.splits["train"][0]
    q = files.questions("train")[0]
    assert (first.id, first.question, first.golds, first.dataset, first.hops, first.tier) == (
        q.id, q.question, q.golds, q.dataset, q.hops, q.tier)
    a, b = ds.splits["test"][0], ds.splits["test"][1]
    assert (a.id, a.golds, a.dataset, a.question) == ("abc", ("A", "B"), "hotpotqa", "Who wrote X?")
    assert (b.id, b.dataset) == ("test-1", "nq")
    assert a.to_qa_prompt().golds == ("A", "B")


def _write(path, rows=None, text=None):
    with open(path, "w", encoding="utf-8") as f:
        if text is not None:
            f.write(text)
        elif path.suffix == ".jsonl":
            f.writelines(json.dumps(r) + "\n" for r in rows)
        else:
            json.dump(rows, f)


@pytest.fixture(scope="module")
def public(tmp_path_factory):
    """Tiny files in each benchmark's published format."""
    root = tmp_path_factory.mktemp("public")
    d = {name: root / name for name in ("flashrag_nq", "nq", "triviaqa", "hotpotqa", "2wiki", "musique", "bamboogle")}
    for p in d.values():
        p.mkdir()
    _write(d["flashrag_nq"] / "dev.jsonl", [{"id": "dev_0", "question": "who wrote hamlet", "golden_answers":
                                             ["Shakespeare", "William Shakespeare"]}])  # fmt: skip
    _write(d["nq"] / "NQ-open.dev.jsonl", [{"question": "capital of france", "answer": ["Paris"]}])
    _write(d["triviaqa"] / "unfiltered-web-dev.json", {"Data": [{"QuestionId": "tc_1", "Question": "Which planet?",
           "Answer": {"Value": "Mars", "Aliases": ["Mars", "Red Planet"], "NormalizedAliases": ["mars"]}}],
           "Domain": "Web", "Version": 1.0})  # fmt: skip
    _write(d["hotpotqa"] / "hotpot_dev_distractor_v1.json", [{"_id": "5a8b", "question": "Were both born in Ohio?",
           "answer": "yes", "type": "comparison", "level": "hard", "supporting_facts": [], "context": []}])  # fmt: skip
    _write(d["2wiki"] / "dev.json", [{"_id": "8813", "type": "compositional", "question": "Who is the mother of X?",
           "context": [], "supporting_facts": [], "evidences": [["X", "director", "Y"], ["Y", "mother", "Z"]],
           "answer": "Z"}])  # fmt: skip
    _write(d["musique"] / "musique_ans_v1.0_dev.jsonl", [
        {"id": "2hop__1_2", "paragraphs": [], "question": "Who is the spouse of the Green performer?",
         "question_decomposition": [{"id": 1}, {"id": 2}], "answer": "Miquette Giraudy",
         "answer_aliases": ["M. Giraudy"], "answerable": True},
        {"id": "2hop__3_4", "paragraphs": [], "question": "Unanswerable?", "question_decomposition": [],
         "answer": "", "answer_aliases": [], "answerable": False}])  # fmt: skip
    with open(d["bamboogle"] / "bamboogle.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerows([["Question", "Answer"], ["Who was president when the first iPhone came out?", "George W. Bush"]])
    return d


EXPECTED = {
    "flashrag_nq": ("nq", "dev", "dev_0", "who wrote hamlet", ("Shakespeare", "William Shakespeare"), 0),
    "nq": ("nq", "dev", "nq-dev-1", "capital of france", ("Paris",), 1),
    "triviaqa": ("triviaqa", "dev", "tc_1", "Which planet?", ("Mars", "Red Planet"), 1),
    "hotpotqa": ("hotpotqa", "dev", "5a8b", "Were both born in Ohio?", ("yes",), 2),
    "2wiki": ("2wiki", "dev", "8813", "Who is the mother of X?", ("Z",), 2),
    "musique": ("musique", "dev", "2hop__1_2", "Who is the spouse of the Green performer?",
                ("Miquette Giraudy", "M. Giraudy"), 2),
    "bamboogle": ("bamboogle", "test", "bamboogle-test-1", "Who was president when the first iPhone came out?",
                  ("George W. Bush",), 0),
}  # fmt: skip


@pytest.mark.parametrize("source", sorted(EXPECTED))
def test_public_benchmark_formats(public, source, tmp_path):
    benchmark, split, rid, question, golds, hops = EXPECTED[source]
    strict = source != "musique"  # its unanswerable row is an error in strict mode
    ds = benchmark_qa(benchmark, source_dir=public[source], data_dir=tmp_path, strict=strict)
    assert list(ds.splits) == [split]
    r = ds.splits[split][0]
    assert (r.dataset, r.split, r.id, r.question, r.golds, r.hops) == (benchmark, split, rid, question, golds, hops)


def test_benchmark_strict_and_lenient(public):
    (path,) = find_files(public["musique"]).values()
    with pytest.raises(DataError, match="row 2: unanswerable"):
        read_benchmark("musique", path)
    lenient = read_benchmark("musique", path, strict=False)
    assert len(lenient.rows) == 1 and lenient.skipped == {"unanswerable": 1}
    with pytest.raises(ValueError, match="unknown benchmark"):
        read_benchmark("squad", path)


def test_benchmark_files_and_splits(tmp_path):
    assert [split_of(n) for n in ("hotpot_train_v1.1.json", "NQ-open.dev.jsonl", "validation.jsonl", "test.jsonl",
                                  "bamboogle.csv", "musique_ans_v1.0_dev.jsonl")] == [
        "train", "dev", "dev", "test", "test", "dev"]  # fmt: skip
    _write(tmp_path / "dev.jsonl", text="")
    _write(tmp_path / "hotpot_dev_fullwiki_v1.json", text="[]")
    with pytest.raises(DataError, match="several files for split dev"):
        find_files(tmp_path)


def _ids(it, n):
    return [next(it) for _ in range(n)]


def test_resumable_iterator():
    data = list(range(10))
    a = ResumableIterator(data, seed=3)
    first = _ids(a, 25)
    assert sorted(first[:10]) == data and sorted(first[10:20]) == data  # each epoch a permutation
    assert first[:10] != first[10:20] and first[:10] != data  # reshuffled every epoch
    assert _ids(ResumableIterator(data, seed=3), 25) == first
    assert _ids(ResumableIterator(data, seed=4), 10) != first[:10]
    b = ResumableIterator(data, seed=3)
    _ids(b, 7)
    state = b.get_state()
    assert state["position"] == 7 and all(isinstance(v, int) for v in state.values())
    c = ResumableIterator(data, seed=3)
    c.set_state(state)
    assert _ids(c, 18) == first[7:]
    with pytest.raises(ValueError, match="seed"):
        ResumableIterator(data, seed=5).set_state(state)
    shards = [ResumableIterator(data, seed=3, shard_index=k, shard_count=3, num_epochs=1) for k in range(3)]
    parts = [list(s) for s in shards]
    assert sorted(sum(parts, [])) == data and [len(p) for p in parts] == [4, 3, 3]
    plain = ResumableIterator(data, shuffle=False, num_epochs=2)
    assert list(plain) == data + data and plain.next_batch(3) == []


def test_iterating_a_prepared_split(world_ds):
    source = world_ds.splits["train"]
    it = ResumableIterator(source, seed=0)
    batch = it.next_batch(4)
    assert all(isinstance(r, QARecord) for r in batch) and it.epoch == 0
    resumed = ResumableIterator(source, seed=0, position=2)
    assert [r.id for r in resumed.next_batch(2)] == [r.id for r in batch[2:]]
