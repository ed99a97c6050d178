"""The scripted teacher: accuracy with the real search tool, file formats, observations exactly as
the tool renders them, values read from passages, imperfections, contrastive pairs, no leakage."""

from __future__ import annotations

import filecmp
import json
import os
import re

import pytest

from test_data_teacher_fixtures import SEED, tiny_teacher, tiny_world, tiny_world_dir

from coa_jax.data.formats import extract_question, read_contrastive_json, read_messages_jsonl
from coa_jax.data.teacher import FILES, CoATeacher, TeacherWorld, write_cot, write_teacher_data
from coa_jax.data.teacher.guard import LeakGuard
from coa_jax.data.teacher.reading import READ_FROM, read_observation, read_value, split_contents
from coa_jax.data.world.leakage import MentionIndex
from coa_jax.data.world.prompt import INSTRUCTION, instruction, user_prompt
from coa_jax.env.bm25 import BM25Retriever
from coa_jax.env.registry import ToolResult
from coa_jax.env.rewards import format_ok, get_reward
from coa_jax.env.search_tool import SearchTool
from coa_jax.env.tags import SEARCH_SPEC, ActionParser

REWARD = get_reward("autocoa")


@pytest.fixture(scope="module")
def teacher():
    return tiny_teacher()


@pytest.fixture(scope="module")
def questions():
    return {q.id: q for q in tiny_world().questions("train")}


def _by_question(rows, questions):
    """Conversations matched to their question through the prompt's question text."""
    by_text = {q.question: q for q in questions.values()}
    return [(by_text[extract_question(c.messages[0].content)], c.messages[1].content) for c in rows]


def test_report_numbers(teacher):
    _, stats = teacher
    assert stats.questions == len(tiny_world().questions("train"))
    assert stats.coa_accuracy >= 0.95
    assert stats.cot_accuracy_popular >= 0.95
    assert stats.cot_accuracy_tail <= 0.5
    assert stats.pair_rows > 0 and 0 < stats.pairs_action_chosen < stats.pair_rows
    assert stats.mean_tokens["coa"] > stats.mean_tokens["cot"] > 0
    assert stats.test_tail_facts > 0 and stats.test_tail_facts_in_observations == 0
    assert stats.held_out_facts >= stats.test_tail_facts
    assert set(stats.dropped_for_leakage) == {"coa", "cot", "pairs"}
    assert stats.coa_rows == stats.coa_correct  # every dropped trajectory counts as not right
    assert "left out as they would state one" in stats.summary()


def test_files_read_back_in_reference_formats(teacher, questions):
    out, stats = teacher
    cot = read_messages_jsonl(os.path.join(out, FILES["cot"])).rows
    coa = read_messages_jsonl(os.path.join(out, FILES["coa"])).rows
    pairs = read_contrastive_json(os.path.join(out, FILES["pairs"])).rows
    assert (len(cot), len(coa), len(pairs)) == (stats.cot_rows, stats.coa_rows, stats.pair_rows)
    for rows in (cot, coa):
        for c in rows:
            assert [m.role for m in c.messages] == ["user", "assistant"]
            assert c.messages[0].content.startswith(instruction("compact"))
    for q, text in _by_question(cot + coa, questions):
        assert text.startswith("<think>\n") and text.count("</think>") == 1
        assert re.search(r"</think>\n\nThe answer is .+\.\n\n\\boxed\{[^{}]+\}$", text)
        assert format_ok(text) and REWARD(text, list(q.golds)) == 1.0  # only right ones are written


def test_observations_are_what_the_search_tool_returns(teacher, questions):
    out, _ = teacher
    tool = SearchTool(BM25Retriever(tiny_world().corpus_path), topk=3)  # a fresh tool, same corpus
    parser = ActionParser([SEARCH_SPEC])
    searched = 0
    for _, text in _by_question(read_messages_jsonl(os.path.join(out, FILES["coa"])).rows, questions):
        for action in parser.find_actions(text):
            observation = tool.call([action.query])[0].text
            assert text.startswith(observation, action.end)
            searched += 1
    assert searched > 0


def test_values_come_from_the_passages_not_the_gold():
    tw = TeacherWorld(tiny_world(), SEED)
    q = next(q for q in tiny_world().questions("train") if q.hops == 1 and q.steps[0].relation == "birth_year")
    real = SearchTool(BM25Retriever(tiny_world().corpus_path), topk=3)

    class Forged(SearchTool):  # the corpus says another year than the world's facts
        def call(self, queries):
            return [ToolResult(r.text.replace(q.golds[0], "1111"), r.ok) for r in real.call(queries)]

    trajectory = CoATeacher(tw, Forged(real.backend, topk=3)).write(q, skip_known=0.0)
    assert trajectory.answer == "1111"


def test_reformulates_until_the_passage_is_found():
    tw = TeacherWorld(tiny_world(), SEED)
    q = next(q for q in tiny_world().questions("train") if q.tier == "tail" and q.hops == 1)
    real = SearchTool(BM25Retriever(tiny_world().corpus_path), topk=3)
    first = CoATeacher(tw, real).queries(tw.world.by_id[q.steps[0].subject], q.steps[0].relation,
                                         tw.words(tw.world.by_id[q.steps[0].subject]))[0]  # fmt: skip

    class FirstQueryFails(SearchTool):
        def call(self, queries):
            return [self.failure_result("down") if query == first else r
                    for query, r in zip(queries, real.call(queries))]  # fmt: skip

    trajectory = CoATeacher(tw, FirstQueryFails(real.backend, topk=3)).write(q)
    assert trajectory.searches >= 2 and trajectory.events["reformulated"] >= 1
    assert REWARD(trajectory.text, list(q.golds)) == 1.0


def test_imperfections_and_knowing_when_not_to_act(teacher):
    _, stats = teacher
    for event in ("poor_query", "reformulated", "distractor_corrected", "recalled"):
        assert stats.events.get(event, 0) > 0, event
    assert stats.coa_without_search > 0  # popular questions answered from memory


def test_cot_guesses_are_plausible_and_stable():
    tw = TeacherWorld(tiny_world(), SEED)
    tail = [q for q in tiny_world().questions("train") if q.tier == "tail" and q.hops == 1]
    for q in tail[:10]:
        first, again = write_cot(q, tw), write_cot(q, tw)
        assert first.text == again.text and first.events.get("guessed") == 1
        subject = tw.world.by_id[q.steps[0].subject]
        guess = first.answer
        assert guess != tw.value_of(subject, q.steps[0].relation)
        assert guess in tw.relation_values(q.steps[0].relation)  # a real value of the same relation


def test_pairs_follow_spec(teacher, questions):
    out, _ = teacher
    by_text = {q.question: q for q in questions.values()}
    kinds = set()
    for pair in read_contrastive_json(os.path.join(out, FILES["pairs"])).rows:
        (human,) = pair.conversation
        at = human.value.index("\n<think>\n") + 1
        prompt, prefix = human.value[:at], human.value[at:]
        q = by_text[extract_question(prompt)]
        assert prompt == user_prompt(q.question, "compact") and prefix.endswith("\n")
        acts = [t.value.startswith("<begin_search>") for t in (pair.chosen, pair.rejected)]
        assert sorted(acts) == [False, True]
        assert "<begin_search>" not in [pair.chosen, pair.rejected][acts.index(True) ^ 1].value
        assert REWARD(prefix + pair.chosen.value, list(q.golds)) == 1.0
        assert REWARD(prefix + pair.rejected.value, list(q.golds)) == 0.0
        kinds.add((acts[0], q.tier))
    assert (True, "tail") in kinds and (False, "popular") in kinds


def test_reasoner_traces_state_no_tail_fact(teacher):
    out, stats = teacher
    files = tiny_world()
    world = TeacherWorld(files, SEED).world
    index = MentionIndex(world)
    tail = {f.id for f in files.facts if f.tier == "tail"}
    rows = read_messages_jsonl(os.path.join(out, FILES["reasoner"])).rows
    assert len(rows) == stats.reasoner_traces > 0
    train = {q.question for q in files.questions("train")}
    for c in rows:
        question = extract_question(c.messages[0].content)
        assert question in train
        assert not tail & index.stated_facts(f"{question}\n{c.messages[1].content}")
        assert "<begin_search>" not in c.messages[1].content


def test_deterministic_for_a_seed(teacher, tmp_path):
    out, _ = teacher
    write_teacher_data(tiny_world_dir(), tmp_path, seed=SEED)
    for name in FILES.values():
        assert filecmp.cmp(os.path.join(out, name), tmp_path / name, shallow=False), name
    write_teacher_data(tiny_world_dir(), tmp_path / "other", seed=SEED + 1, count_tokens=False)
    assert not filecmp.cmp(os.path.join(out, FILES["coa"]), tmp_path / "other" / FILES["coa"], shallow=False)


def test_reading_passages():
    files = tiny_world()
    tw = TeacherWorld(files, SEED)
    for f in files.facts:  # every fact is read back from its subject's passage
        subject = tw.world.by_id[f.subject]
        passage = split_contents(files.passage(files.fact_passages[f.id][0]).contents)
        assert passage.title == subject.name
        assert read_value(passage, f.relation) == tw.value_of(subject, f.relation)
    for p in files.passages:  # and nothing is ever misread
        passage = split_contents(p.contents)
        entity = tw.entity_named(passage.title)
        for relation in READ_FROM:
            value = read_value(passage, relation)
            assert value is None or value == tw.value_of(entity, relation), (relation, p.contents)
    docs = [files.passages[i].contents for i in (0, 1, 2)]
    tool_text = SearchTool(BM25Retriever(files.corpus_path), topk=3).fmt.documents(docs)
    assert [(r.title, r.text) for r in read_observation(tool_text)] == [
        (split_contents(d).title, split_contents(d).text) for d in docs]
    single = SearchTool(BM25Retriever(files.corpus_path), topk=1).fmt.documents(docs[:1], numbered=False)
    assert read_observation(single)[0].title == split_contents(docs[0]).title


def test_compact_instruction():
    compact = instruction("compact")
    assert len(compact.split()) < 40 < len(INSTRUCTION.split())
    for tag in ("<think>", "</think>", "<begin_search>", "</end_search>", "<search_result>", "</search_result>",
                "\\boxed{"):
        assert tag in compact
    assert user_prompt("Who?") == INSTRUCTION + "Who?\n"  # the reference style stays the default
    assert extract_question(user_prompt("Who is X?", "compact")) == "Who is X?"
    with pytest.raises(ValueError, match="unknown instruction style"):
        instruction("verbose")


def test_teacher_report_prints_the_numbers(capsys):
    import importlib.util

    path = os.path.join(os.path.dirname(__file__), "..", "launch", "teacher_report.py")
    spec = importlib.util.spec_from_file_location("teacher_report", path)
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    assert report.main(["--world", tiny_world_dir(), "--splits", "dev"]) == 0
    text = capsys.readouterr().out
    assert "CoA accuracy" in text and "CoT accuracy: popular" in text and "dev: dataset" in text


# ---- held-out facts (independent of the library's mention index: regexes over the files) ----


def _held_out_facts(files) -> dict[str, str]:
    """fact id -> dev / test: tail facts the dev and test questions use, and facts.jsonl's "split"."""
    tail = {f.id for f in files.facts if f.tier == "tail"}
    out = {f: split for split in ("dev", "test") for q in files.questions(split) for f in q.facts if f in tail}
    with open(os.path.join(files.root, "facts.jsonl"), encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row["split"] in ("dev", "test"):
                out.setdefault(row["id"], row["split"])
    return out


def _pattern(surfaces) -> re.Pattern:
    return re.compile("|".join(r"(?<!\w)" + re.escape(s.lower()) + r"(?!\w)" for s in surfaces))


def _records(out: str):
    """(file, the text a learner reads in one record) for every record of the four data files."""
    for name in (FILES["coa"], FILES["cot"], FILES["reasoner"]):
        with open(os.path.join(out, name), encoding="utf-8") as f:
            for line in f:
                yield name, "\n".join(m["content"] for m in json.loads(line)["messages"])
    with open(os.path.join(out, FILES["pairs"]), encoding="utf-8") as f:
        for row in json.load(f):
            yield FILES["pairs"], "\n".join([t["value"] for t in row["conversation"]]
                                           + [row["chosen"]["value"], row["rejected"]["value"]])  # fmt: skip


def test_teacher_files_state_no_held_out_fact(teacher):
    """No record of CoA_data.jsonl, CoT_data.jsonl, CoT+A_data.json or reasoner_traces.jsonl (search
    observations included) mentions both ends of a tail fact that dev or test questions own."""
    out, _ = teacher
    files = tiny_world()
    held_out = _held_out_facts(files)
    assert any(split == "test" for split in held_out.values())
    entity = {e.id: e for e in files.entities}
    ends = []
    for fact_id in sorted(held_out):
        f = files.fact(fact_id)
        objects = entity[f.object].surfaces if f.object else (f.value,)
        ends.append((fact_id, _pattern(entity[f.subject].surfaces), _pattern(objects)))
    seen = {}
    for name, text in _records(out):
        seen[name] = seen.get(name, 0) + 1
        text = text.lower()
        for fact_id, subject, obj in ends:
            assert not (subject.search(text) and obj.search(text)), (name, fact_id, held_out[fact_id], text[:300])
    assert set(seen) == {FILES["coa"], FILES["cot"], FILES["reasoner"], FILES["pairs"]}
    assert seen[FILES["coa"]] > 50


def test_a_search_showing_a_held_out_fact_is_never_used():
    """Made to hold out a fact the first query's results state, the teacher searches another way
    (or, when no way is clean, drops the trajectory and counts it); what it writes shows the tool's
    observations byte for byte and never states the fact."""
    files = tiny_world()
    tw = TeacherWorld(files, SEED)
    index = MentionIndex(tw.world)
    tool = SearchTool(BM25Retriever(files.corpus_path), topk=3)
    parser = ActionParser([SEARCH_SPEC])
    outcomes = {"searched another way": 0, "dropped": 0}
    for q in [q for q in files.questions("train") if q.tier == "tail" and q.hops == 1][:15]:
        subject = tw.world.by_id[q.steps[0].subject]
        first = CoATeacher(tw, tool).queries(subject, q.steps[0].relation, tw.words(subject))[0]
        results = read_observation(tool.call([first])[0].text)
        stated = [index.stated_facts(f'"{p.title}"\n{p.text}') - set(q.facts) for p in results[1:]]
        stated = sorted(set().union(*stated))
        if not stated:
            continue
        guard = LeakGuard(index, frozenset(stated[:1]))
        teacher = CoATeacher(tw, tool, guard=guard)
        trajectory = teacher.write(q)
        if trajectory is None:
            assert teacher.dropped["main"] == 1
            outcomes["dropped"] += 1
            continue
        assert not guard.stated(q.question, trajectory.text)
        actions = parser.find_actions(trajectory.text)
        assert actions and first not in [a.query for a in actions]
        for action in actions:
            assert trajectory.text.startswith(tool.call([action.query])[0].text, action.end)
        assert REWARD(trajectory.text, list(q.golds)) == 1.0
        outcomes["searched another way"] += 1
    assert outcomes["searched another way"] > 0, outcomes
