"""The base reasoner's skill rows (query writing, reading) and the mask that keeps tool calls out
of its loss."""

from __future__ import annotations

import os

import numpy as np
from test_data_teacher_fixtures import tiny_teacher, world_hf_tokenizer

from coa_jax.data.formats import extract_question, read_messages_jsonl
from coa_jax.data.formats.workflow import NO_QUERY, controller_prefix, query_prompt
from coa_jax.data.provenance import Provenance as P
from coa_jax.data.provenance import loss_mask, mask_through_last_observation
from coa_jax.data.teacher import FILES
from coa_jax.data.tokenize_sft import ChatTokenizer, tokenize_conversation
from coa_jax.env.tags import SEARCH_SPEC


def _rows(name):
    out, _ = tiny_teacher()
    return read_messages_jsonl(os.path.join(out, FILES[name])).rows


def test_skill_rows_use_the_workflow_texts():
    rows = _rows("skills")
    queries = [c for c in rows if c.messages[0].content.startswith(query_prompt("", [])[:40])]
    reading = [c for c in rows if c not in queries]
    assert queries and reading
    done_rows = [c for c in queries if c.messages[-1].content == NO_QUERY]
    for c in queries:
        answer = c.messages[-1].content
        assert "\n" not in answer and SEARCH_SPEC.open_tag not in answer
        assert answer == NO_QUERY or any(w[:1].isupper() for w in answer.split())  # names what it looks for
    # one "none" row per question, after all of its searches: the prompt lists as many as its reading row
    reading_by_question = {extract_question(c.messages[0].content): c for c in reading}
    assert len(done_rows) == len(reading) == len(reading_by_question)
    for c in done_rows:
        prompt = c.messages[0].content
        question = prompt.split("Question: ", 1)[1].split("\n", 1)[0]
        searched = reading_by_question[question].messages[-1].content.count(SEARCH_SPEC.open_tag)
        assert prompt.count("Already searched:") == searched >= 1
    for c in reading:
        text = c.messages[-1].content
        last = text.rfind("</search_result>")
        # the controller's prefix: calls and results only, then text that reads them and answers
        assert text.startswith(controller_prefix([])) and last > 0
        assert SEARCH_SPEC.open_tag not in text[last:] and "\\boxed{" in text[last:]
    # every reading row's question also has a CoA row
    coa_questions = {extract_question(c.messages[0].content) for c in _rows("coa")}
    assert {extract_question(c.messages[0].content) for c in reading} <= coa_questions


def test_reasoner_mask_keeps_calls_out_of_the_loss():
    chat = ChatTokenizer(world_hf_tokenizer())
    reading = [c for c in _rows("skills") if SEARCH_SPEC.open_tag in c.messages[-1].content]
    ex = tokenize_conversation(reading[0].messages, chat)
    labels = mask_through_last_observation(ex.labels)
    trained = loss_mask(labels, include_observations=True) > 0
    ids = ex.tokens[trained].tolist()
    text = world_hf_tokenizer().decode(ids)
    assert SEARCH_SPEC.open_tag not in text and "search_result" not in text and "\\boxed{" in text
    # the tokens after the last observation keep their labels
    last = int(np.nonzero(np.isin(ex.labels, [int(P.OBSERVATION)]))[0][-1])
    np.testing.assert_array_equal(labels[last + 1:], ex.labels[last + 1:])
    assert (labels[:last + 1] == int(P.PROMPT)).all()


def test_mask_leaves_rows_without_observations_alone():
    labels = np.asarray([P.PROMPT, P.POLICY, P.POLICY, P.ANSWER, P.PAD], np.int8)
    np.testing.assert_array_equal(mask_through_last_observation(labels), labels)
    with_pad = np.asarray([P.PAD, P.POLICY, P.OBSERVATION, P.POLICY], np.int8)
    assert mask_through_last_observation(with_pad).tolist() == [P.PAD, P.PROMPT, P.PROMPT, P.POLICY]


def test_queries_that_found_nothing_are_not_taught():
    """The teacher's poor queries (a misspelled or missing name) and queries it had to reformulate
    stay in the CoA rows, but no query row teaches them: the next query, with the failed search in
    its notes, is the row."""
    from coa_jax.data.teacher.phrases import NOT_FOUND

    failed, recovered = set(), 0
    for c in _rows("coa"):
        text = c.messages[-1].content
        for part in text.split(SEARCH_SPEC.open_tag)[1:]:
            query = part.split(SEARCH_SPEC.close_tag, 1)[0].strip()
            after = part.split("</search_result>", 1)[1].lstrip("\n")
            if after.startswith(NOT_FOUND):
                failed.add((extract_question(c.messages[0].content), query))
    assert failed  # the tiny world's teacher makes some
    for c in _rows("skills"):
        if c.messages[0].content.startswith(query_prompt("", [])[:40]):
            question = c.messages[0].content.split("Question: ", 1)[1].split("\n", 1)[0]
            assert (question, c.messages[-1].content) not in failed
            recovered += "Already searched:" in c.messages[0].content and c.messages[-1].content != NO_QUERY
    assert recovered


def test_base_tool_use_rows_are_the_drawn_share_of_coa_rows_with_their_calls_as_targets(tmp_path):
    """teacher.base_tool_use: that share of the right CoA trajectories (with a search) also trains the
    base reasoner, calls included; its other rows still teach no call."""
    import pathlib

    from test_data_teacher_fixtures import tiny_world_dir

    from coa_jax.data.teacher import write_teacher_data
    from coa_jax.train.stages import reasoner_examples

    stats = write_teacher_data(tiny_world_dir(), tmp_path, seed=0, base_tool_use=0.5, count_tokens=False)
    tool_use = read_messages_jsonl(os.path.join(tmp_path, FILES["tool_use"])).rows
    coa = {c.messages[0].content: c for c in read_messages_jsonl(os.path.join(tmp_path, FILES["coa"])).rows}
    searched = [c for c in coa.values() if SEARCH_SPEC.open_tag in c.messages[-1].content]
    assert stats.tool_use_rows == len(tool_use) and stats.base_tool_use == 0.5
    assert all(coa[c.messages[0].content] == c and SEARCH_SPEC.open_tag in c.messages[-1].content for c in tool_use)
    assert 0.25 * len(searched) < len(tool_use) < 0.75 * len(searched)  # about half, drawn by the seed

    chat = ChatTokenizer(world_hf_tokenizer())
    call_id = world_hf_tokenizer().convert_tokens_to_ids(SEARCH_SPEC.open_tag)
    examples = reasoner_examples(pathlib.Path(tmp_path), pathlib.Path(tiny_world_dir()), chat, world_hf_tokenizer())
    taught_calls = sum(int(((e.tokens == call_id) & (loss_mask(e.labels, include_observations=False) > 0)).sum())
                       for e in examples)
    assert taught_calls == sum(c.messages[-1].content.count(SEARCH_SPEC.open_tag) for c in tool_use) > 0

    none = write_teacher_data(tiny_world_dir(), tmp_path / "none", seed=0, count_tokens=False)
    assert none.tool_use_rows == 0 and not read_messages_jsonl(os.path.join(tmp_path / "none", FILES["tool_use"])).rows
