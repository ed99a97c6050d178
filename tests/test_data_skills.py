"""The base reasoner's skill rows (query writing, reading) and the mask that keeps tool calls out
of its loss."""

from __future__ import annotations

import os

import numpy as np
from test_data_teacher_fixtures import tiny_teacher, world_hf_tokenizer

from coa_jax.data.formats import extract_question, read_messages_jsonl
from coa_jax.data.formats.workflow import controller_prefix, query_prompt
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
    for c in queries:
        answer = c.messages[-1].content
        assert "\n" not in answer and SEARCH_SPEC.open_tag not in answer
        assert any(w[:1].isupper() for w in answer.split())  # names what it looks for
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
