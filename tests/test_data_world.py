"""The embedded world: determinism, coverage, tiers, supporting passages, no leakage."""

from __future__ import annotations

import collections
import itertools
import os
import re

import pytest

from coa_jax.cli import main as cli_main
from coa_jax.data.formats import read_verl_parquet
from coa_jax.data.world import build_world, generate, load_world
from coa_jax.data.world.leakage import pretrain_leaks, question_leaks

EXPECTED_TYPES = {
    "nq": {"single"},
    "triviaqa": {"single"},
    "hotpotqa": {"bridge", "comparison"},
    "2wiki": {"compositional", "comparison", "bridge_comparison"},
    "musique": {"chain"},
    "bamboogle": {"hard"},
}


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    """The tiny world built twice with one seed: once through the CLI, once through the API."""
    a, b = tmp_path_factory.mktemp("world_a"), tmp_path_factory.mktemp("world_b")
    assert cli_main(["world", "--out", str(a), "--seed", "3", "--size", "tiny"]) == 0
    build_world(b, seed=3, size="tiny")
    return a, b


@pytest.fixture(scope="module")
def small():
    return generate(seed=0, size="small")


def _files(root) -> dict[str, bytes]:
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


def test_same_seed_gives_byte_identical_files(tiny_dirs):
    a, b = (_files(d) for d in tiny_dirs)
    assert sorted(a) == sorted(b)
    expected = {"corpus.jsonl", "pretrain.txt", "entities.jsonl", "facts.jsonl", "stats.json",
                "tokenizer/tokenizer.json", "tokenizer/tokenizer_config.json", "tokenizer/special_tokens_map.json"}
    expected |= {f"questions/{s}.{ext}" for s in ("train", "dev", "test") for ext in ("jsonl", "parquet")}
    assert set(a) == expected
    for name in sorted(a):
        assert a[name] == b[name], f"{name} differs between two builds with one seed"


def test_other_seed_gives_other_world():
    one, two = generate(seed=1, size="tiny"), generate(seed=2, size="tiny")
    assert [e.name for e in one.world.entities] != [e.name for e in two.world.entities]


def test_small_world_populates_every_type_tier_and_hop_count(small):
    qs = small.questions
    for dataset, types in EXPECTED_TYPES.items():
        assert {q.type for q in qs if q.dataset == dataset} == types, dataset
        tiers = {q.tier for q in qs if q.dataset == dataset}
        assert tiers == ({"tail"} if dataset == "bamboogle" else {"popular", "tail"}), dataset
        assert any(q.split == "test" and q.dataset == dataset for q in qs), dataset
    assert {q.hops for q in qs} == {1, 2, 3, 4}
    assert {q.tier for q in small.split("test")} == {"popular", "tail"}
    assert not any(q.dataset == "bamboogle" for q in small.split("train") + small.split("dev"))
    golds = collections.Counter(q.golds[0] for q in qs)
    assert golds["yes"] > 20 and golds["no"] > 20
    popular = sum(f.tier == "popular" for f in small.world.facts) / len(small.world.facts)
    assert 0.25 <= popular <= 0.45
    assert len(small.split("train")) > 1000 and len(small.split("test")) >= 300


def _mention(surface: str) -> re.Pattern:
    return re.compile(r"(?<!\w)" + re.escape(surface.lower()) + r"(?!\w)")


def _surfaces(world, entity_id: str) -> tuple[str, ...]:
    return world.by_id[entity_id].surfaces


def _states(world, text: str, fact) -> bool:
    """Independent of the library's index: both ends of the fact occur as whole words."""
    text = text.lower()
    subject = any(_mention(s).search(text) for s in _surfaces(world, fact.subject))
    objects = _surfaces(world, fact.object) if fact.object else (fact.value,)
    return subject and any(_mention(o).search(text) for o in objects)


def test_tail_facts_absent_from_pretraining_text(small):
    world = small.world
    text = "\n".join(small.pretrain)
    for fact in world.facts:
        if fact.tier == "tail":
            assert not any(_states(world, line, fact) for line in small.pretrain), fact
        elif fact.relation != "spouse" or fact.subject < fact.object:
            assert _states(world, text, fact), f"popular fact missing from pretraining text: {fact}"
    assert pretrain_leaks(small.pretrain, world) == []


def test_gold_answers_appear_in_listed_passages(small):
    passages = {p.id: p for p in small.corpus.passages}
    for q in small.questions:
        assert q.passages and all(p in passages for p in q.passages), q.id
        listed = " ".join(passages[p].contents for p in q.passages)
        for step in q.steps:
            assert step.passage in q.passages
            assert step.value in passages[step.passage].text, (q.id, step)
        if q.golds[0] not in ("yes", "no"):
            for gold in q.golds:
                assert gold in listed, (q.id, gold)


def test_chains_are_consistent(small):
    world = small.world
    for q in small.questions:
        assert q.hops == len(q.steps)
        for branch in {s.branch for s in q.steps}:
            steps = [s for s in q.steps if s.branch == branch]
            for a, b in itertools.pairwise(steps):
                assert a.object == b.subject, q.id
        tiers = {world.fact_by_id[s.fact].tier for s in q.steps}
        assert q.tier == ("tail" if "tail" in tiers else "popular")
        if q.operation == "lookup":
            assert q.golds[0] == q.steps[-1].value
        last = {s.branch: s.value for s in q.steps}  # each branch's final value
        anchor = {s.branch: s.subject for s in reversed(q.steps)}  # each branch's first subject
        if q.operation == "same":
            assert q.golds == (("yes",) if last[0] == last[1] else ("no",))
        elif q.operation != "lookup":
            number = {b: int(v.replace(",", "")) for b, v in last.items()}
            pick = min if q.operation == "earlier" else max
            assert q.golds[0] == world.by_id[anchor[pick(number, key=number.get)]].name


def test_no_leakage_of_test_tail_facts_into_train_and_dev(small):
    world = small.world
    tail = {f.id for f in world.facts if f.tier == "tail"}
    used = {s: {f for q in small.split(s) for f in q.facts if f in tail} for s in ("train", "dev", "test")}
    assert used["test"] and used["dev"] and used["train"]
    assert not used["test"] & (used["train"] | used["dev"])
    assert not used["dev"] & used["train"]
    # the text rule: no train/dev question (text or golds) mentions both ends of a test tail fact
    for q in small.split("train") + small.split("dev"):
        shown = "\n".join((q.question, *q.golds))
        for fact_id in used["test"]:
            assert not _states(world, shown, world.fact_by_id[fact_id]), (q.id, fact_id)
    assert question_leaks(small.questions, world) == []
    # and test questions are not copies of train questions
    assert not {q.question for q in small.split("test")} & {q.question for q in small.split("train")}


def test_corpus_rows_and_near_duplicate_names(small):
    passages = small.corpus.passages
    assert [p.id for p in passages] == [str(i) for i in range(len(passages))]
    for p in passages:
        row = p.to_json()
        assert set(row) == {"id", "title", "contents"}
        assert row["contents"].startswith(f'"{p.title}"\n')
        assert 5 <= len(p.text.split()) <= 80
    persons = [e.name for e in small.world.of_kind("person")]
    surnames = collections.Counter(n.split()[-1] for n in persons)
    assert max(surnames.values()) >= 2
    one_letter = [(a, b) for a, b in itertools.combinations(persons, 2)
                  if len(a) == len(b) and sum(x != y for x, y in zip(a, b)) == 1]  # fmt: skip
    assert one_letter


def test_written_world_reads_back(tiny_dirs):
    root = tiny_dirs[0]
    world = load_world(root)
    built = generate(seed=3, size="tiny")
    assert world.splits["test"] == built.split("test")
    assert world.passages == built.corpus.passages
    rows = read_verl_parquet(world.parquet_path("test")).rows
    assert [r.question for r in rows] == [q.question for q in built.split("test")]
    assert [r.golds for r in rows] == [q.golds for q in built.split("test")]
    assert [r.dataset for r in rows] == [q.dataset for q in built.split("test")]
    assert all("\\boxed{" in r.prompt[0].content and "<begin_search>" in r.prompt[0].content for r in rows)
    assert world.stats["questions"]["total"] == len(built.questions)
    assert dict(world.owner) == dict(built.owner)  # facts.jsonl "split"
    levels = world.stats["corpus"]["passages_by_level"]
    assert sum(levels.values()) == len(world.passages) and levels["test"] > 0


def _held_out(built) -> dict[str, str]:
    """tail fact id -> dev / test, from the questions alone (independent of the owner map), plus
    the owner map's dev / test facts (which also hold facts no text can state apart from them)."""
    world = built.world
    out = {f: q.split for q in built.questions if q.split != "train" for f in q.facts
           if world.fact_by_id[f].tier == "tail"}  # fmt: skip
    out.update({f: s for f, s in built.owner.items() if s != "train"})
    return out


def test_held_out_facts_stay_out_of_train_passages(small):
    """A dev or test fact is stated only in passages of its own: never in one that states a
    train-owned tail fact, nor in one a train question lists (regex check, whole passages)."""
    world, corpus = small.world, small.corpus
    held_out = _held_out(small)
    assert held_out and set(held_out.values()) == {"dev", "test"}
    tail = {f.id for f in world.facts if f.tier == "tail"}
    train_owned = {f for q in small.split("train") for f in q.facts if f in tail}
    assert not train_owned & set(held_out)
    rank = {"train": 0, "dev": 1, "test": 2}
    train_read = {p for q in small.split("train") for p in q.passages}
    dev_read = {p for q in small.split("dev") for p in q.passages}
    shown = set()
    for p in corpus.passages:
        states = {f for f in held_out if _states(world, p.contents, world.fact_by_id[f])}
        shown |= states
        if not states:
            continue
        assert p.id not in train_read, (p.id, sorted(states))
        assert not any(_states(world, p.contents, world.fact_by_id[f]) for f in train_owned), p.contents
        if any(held_out[f] == "test" for f in states):
            assert p.id not in dev_read, (p.id, sorted(states))
        assert rank[corpus.passage_level[p.id]] >= max(rank[held_out[f]] for f in states)
    assert shown == set(held_out)  # every held-out fact is still in the corpus (its own passages)
    # the split rule behind it: no question needs a tail fact about an entity a later split's facts link
    linked = {s: {e for f, o in held_out.items() if o == s for e in (world.fact_by_id[f].subject,
                                                                   world.fact_by_id[f].object) if e}
              for s in ("dev", "test")}  # fmt: skip
    for q in small.split("train") + small.split("dev"):
        later = linked["test"] | (linked["dev"] if q.split == "train" else set())
        assert not {s.subject for s in q.steps if s.fact in tail} & later, q.id


def test_held_out_passages_read_like_the_rest(small):
    """Held-out passages are not short notes (short passages come up for any search sharing a word)."""
    lengths = {level: [len(p.text.split()) for p in small.corpus.passages if small.corpus.passage_level[p.id] == level]
               for level in ("train", "dev", "test")}  # fmt: skip
    assert lengths["test"] and lengths["dev"]
    median = sorted(lengths["train"])[len(lengths["train"]) // 2]
    assert min(lengths["test"] + lengths["dev"]) >= 0.6 * median
