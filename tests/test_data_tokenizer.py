"""The embedded world's tokenizer: exact round trips, single-token tags, HF loading, determinism."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from coa_jax.data.world import ACTION_TAGS, build_world, load_world
from coa_jax.data.world.tokenizer import train_tokenizer

TRAJECTORY = (
    "<think>\nI am not sure where the author of The Silent Harbor was born.\n"
    "<begin_search> The Silent Harbor novel written by </end_search>\n\n"
    "<search_result> result 1: \"The Silent Harbor\"\nThe Silent Harbor is a 1961 novel written by Marel Dovan.\n"
    "result 2: ...\nresult 3: ... </search_result>\n\n"
    "So the author is Marel Dovan. <begin_calc> 1961 - 1932 </end_calc>\n\n<calc_result> 29 </calc_result>\n"
    "</think>\n\nThe author was born in Port Tarvin.\n\n\\boxed{Port Tarvin}"
)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world_tok")
    build_world(root, seed=5, size="tiny")
    return load_world(root)


@pytest.fixture(scope="module")
def hf_tokenizer(world):
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(world.tokenizer_dir)


def test_round_trip_on_corpus_and_trajectory(world, hf_tokenizer):
    raw = Tokenizer.from_file(f"{world.tokenizer_dir}/tokenizer.json")
    texts = [p.contents for p in world.passages] + [TRAJECTORY, "unseen: Zürich 東京 😀 \t tabs\n\n"]
    for text in texts:
        ids = raw.encode(text).ids
        assert raw.decode(ids, skip_special_tokens=False) == text
        hf_ids = hf_tokenizer.encode(text, add_special_tokens=False)
        assert hf_ids == ids
        assert hf_tokenizer.decode(hf_ids) == text


def test_tags_are_single_tokens_kept_on_decode(hf_tokenizer):
    for tag in ACTION_TAGS:
        ids = hf_tokenizer.encode(tag, add_special_tokens=False)
        assert len(ids) == 1, tag
        assert hf_tokenizer.decode(ids, skip_special_tokens=True) == tag
    ids = hf_tokenizer.encode(TRAJECTORY + "<|im_end|>", add_special_tokens=False)
    assert hf_tokenizer.decode(ids, skip_special_tokens=True) == TRAJECTORY
    for tag in ("<|im_start|>", "<|im_end|>", "<|endoftext|>"):
        assert len(hf_tokenizer.encode(tag, add_special_tokens=False)) == 1
    assert hf_tokenizer.eos_token == hf_tokenizer.pad_token == "<|endoftext|>"


def test_chat_template(hf_tokenizer):
    messages = [{"role": "user", "content": "Where is X based?"}, {"role": "assistant", "content": TRAJECTORY}]
    text = hf_tokenizer.apply_chat_template(messages, tokenize=False)
    assert text == f"<|im_start|>user\nWhere is X based?<|im_end|>\n<|im_start|>assistant\n{TRAJECTORY}<|im_end|>\n"
    prompt = hf_tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")


def test_training_is_deterministic(world):
    texts = [p.contents for p in world.passages] + list(world.pretrain)
    one, two = train_tokenizer(texts, 600), train_tokenizer(texts, 600)
    assert one.to_str() == two.to_str()
    assert one.get_vocab_size() == 600 + len(ACTION_TAGS)


@settings(max_examples=60, deadline=None)
@given(st.text())
def test_any_text_round_trips(world, text):
    raw = Tokenizer.from_file(f"{world.tokenizer_dir}/tokenizer.json")
    assert raw.decode(raw.encode(text).ids, skip_special_tokens=False) == text


def test_tags_agree_with_the_tool_registry():
    tags = pytest.importorskip("coa_jax.env.tags")
    for spec in tags.KNOWN_SPECS.values():
        assert {spec.open_tag, spec.close_tag, spec.result_open, spec.result_close} <= set(ACTION_TAGS)
    assert tags.THINK_CLOSE in ACTION_TAGS
