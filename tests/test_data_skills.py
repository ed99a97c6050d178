"""The base reasoner's skill rows (query writing, reading) and the mask that keeps tool calls out
of its loss."""

from __future__ import annotations

import os

import numpy as np
from test_data_teacher_fixtures import tiny_teacher, world_hf_tokenizer

from coa_jax.data.formats import extract_question, read_messages_jsonl
from coa_jax.data.formats.workflow import need_of, query_prompt
from coa_jax.data.provenance import Provenance as P
from coa_jax.data.provenance import loss_mask
from coa_jax.data.teacher import FILES
from coa_jax.data.tokenize_sft import ChatTokenizer, tokenize_conversation
from coa_jax.env.tags import SEARCH_SPEC


def _rows(name):
    out, _ = tiny_teacher()
    return read_messages_jsonl(os.path.join(out, FILES[name])).rows


def _is_query_row(c) -> bool:
    return c.messages[0].content.startswith(query_prompt("", "")[:40])


def test_skill_rows_use_the_workflow_texts():
    rows = _rows("skills")
    queries = [c for c in rows if _is_query_row(c)]
    reading = [c for c in rows if not _is_query_row(c)]
    assert queries and reading
    coa = {c.messages[0].content: c.messages[-1].content for c in _rows("coa")}
    for c in queries:
        answer, prompt = c.messages[-1].content, c.messages[0].content
        assert "\n" not in answer and SEARCH_SPEC.open_tag not in answer
        assert any(w[:1].isupper() for w in answer.split())  # names what it looks for
        need = prompt.split("Needed: ", 1)[1].rstrip("\n")
        assert need.startswith("the ") and need_of(f"I need {need}.") == need
    # a reading row is the question's CoA trajectory, and every call in it follows a need line (where
    # the workflow's controller searches; a need the teacher knows from memory has no call after it)
    for c in reading:
        text = c.messages[-1].content
        assert coa[c.messages[0].content] == text and SEARCH_SPEC.open_tag in text
        ends = {end for end, _ in _needs(text)}
        calls = [i for i in range(len(text)) if text.startswith(SEARCH_SPEC.open_tag, i)]
        assert all(i in ends for i in calls)
    # every query row's need is stated in its question's reading row, right before a call
    needs = {(extract_question(c.messages[0].content), need) for c in reading for _, need in _needs(c.messages[-1].content)}
    for c in queries:
        prompt = c.messages[0].content
        question = prompt.split("Question: ", 1)[1].split("\n", 1)[0]
        assert (question, prompt.split("Needed: ", 1)[1].rstrip("\n")) in needs


def _needs(text: str) -> list[tuple[int, str]]:
    """(end of line, need) of every need line in a trajectory."""
    out, pos = [], 0
    for line in text.splitlines(keepends=True):
        pos += len(line)
        if need_of(line):
            out.append((pos, need_of(line)))
    return out


def test_reasoner_rows_keep_calls_and_observations_out_of_the_loss():
    """The reasoner trains on the reasoning around each search (the need line before it, the lines
    that read its results) but on no token of a call or an observation."""
    tok = world_hf_tokenizer()
    chat = ChatTokenizer(tok)
    reading = [c for c in _rows("skills") if SEARCH_SPEC.open_tag in c.messages[-1].content]
    for conv in reading[:20]:
        plain = tokenize_conversation(conv.messages, chat)
        ex = tokenize_conversation(conv.messages, chat, calls_as_prompt=True)
        np.testing.assert_array_equal(ex.tokens, plain.tokens)  # same tokens, only labels differ
        trained = loss_mask(ex.labels, include_observations=False) > 0
        text = tok.decode(ex.tokens[trained].tolist())
        assert SEARCH_SPEC.open_tag not in text and SEARCH_SPEC.close_tag not in text
        assert "search_result" not in text and "\\boxed{" in text
        # the relabelled tokens are exactly the calls: each query's text is among them
        moved = (plain.labels != ex.labels)
        assert (ex.labels[moved] == int(P.PROMPT)).all()
        call_text = tok.decode(ex.tokens[moved].tolist())
        content = conv.messages[-1].content
        assert call_text.count(SEARCH_SPEC.open_tag) == content.count(SEARCH_SPEC.open_tag) >= 1
        # the line that reads each observation is a target
        for part in content.split("</search_result>")[1:]:
            assert part.strip().split("\n", 1)[0] in text
    # a row without calls keeps its labels
    plain_rows = [c for c in _rows("reasoner")][:5]
    for conv in plain_rows:
        np.testing.assert_array_equal(tokenize_conversation(conv.messages, chat, calls_as_prompt=True).labels,
                                      tokenize_conversation(conv.messages, chat).labels)


def test_queries_that_found_nothing_are_not_taught():
    """The teacher's poor queries (a misspelled or missing name) and queries it had to reformulate
    stay in the CoA rows, but no query row teaches them: the query after the "No result gives ..."
    line is the row."""
    from coa_jax.data.teacher.phrases import NOT_FOUND

    failed, recovered = set(), set()
    for c in _rows("coa"):
        text = c.messages[-1].content
        question = extract_question(c.messages[0].content)
        for part in text.split(SEARCH_SPEC.open_tag)[1:]:
            query = part.split(SEARCH_SPEC.close_tag, 1)[0].strip()
            after = part.split("</search_result>", 1)[1].lstrip("\n")
            if after.startswith(NOT_FOUND):
                failed.add((question, query))
                recovered.add((question, after.split("\n", 1)[0]))
    assert failed  # the tiny world's teacher makes some
    taught = set()
    for c in _rows("skills"):
        if _is_query_row(c):
            question = c.messages[0].content.split("Question: ", 1)[1].split("\n", 1)[0]
            assert (question, c.messages[-1].content) not in failed
            taught.add((question, "No result gives " + c.messages[0].content.split("Needed: ", 1)[1].rstrip("\n") + "."))
    assert recovered & taught  # the need stated after a failed search has its own row


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
