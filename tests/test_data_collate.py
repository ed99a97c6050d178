"""SFT collation: per-token provenance that matches what the rollout appends, packing, bucketing,
contrastive pairs with shared contexts, truncation counted, resumable streams."""

from __future__ import annotations

import os

import numpy as np
import pytest
import transformers
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from test_data_teacher_fixtures import tiny_teacher, world_hf_tokenizer

from coa_jax.data.collate import collate_pairs, collate_sft, load_pair_examples, load_sft_examples
from coa_jax.data.formats import ContrastivePair, Message, Turn, read_contrastive_json, read_messages_jsonl
from coa_jax.data.provenance import Provenance
from coa_jax.data.streams import PairStream, SFTStream
from coa_jax.data.teacher import FILES
from coa_jax.data.tokenize_pairs import split_prompt_prefix, tokenize_pair
from coa_jax.data.tokenize_sft import ChatTokenizer, tokenize_conversation
from coa_jax.data.world.prompt import user_prompt

# A byte-level BPE without the tags as added tokens, whose pre-tokenizer glues punctuation to the
# newlines after it (like Qwen2's), so ">\n\n" becomes one token: whole-text encoding would merge
# the end of an action with the start of its observation. Llama-3-like template, default system turn.
_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
          r"|\s+(?!\S)|\s+")
_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}<|start_header_id|>system<|end_header_id|>\n\nYou are a bot.<|eot_id|>"
    "{% endif %}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] }}"
    "<|eot_id|>{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


@pytest.fixture(scope="module")
def coa_rows():
    out, _ = tiny_teacher()
    return read_messages_jsonl(os.path.join(out, FILES["coa"])).rows


@pytest.fixture(scope="module")
def world_tok():
    return ChatTokenizer(world_hf_tokenizer())


@pytest.fixture(scope="module")
def other_tok(coa_rows):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(_SPLIT), behavior="isolated"),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    specials = ["<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"]
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    tok.train_from_iterator([c.messages[1].content for c in coa_rows], trainer)
    hf = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|eot_id|>")
    hf.chat_template = _TEMPLATE
    return ChatTokenizer(hf)


def _texts(tok, ex, label):
    return tok.tokenizer.decode([t for t, l in zip(ex.tokens, ex.labels) if l == label])


@pytest.mark.parametrize("which", ["world", "other"])
def test_provenance_matches_what_the_rollout_appends(which, world_tok, other_tok, coa_rows):
    tok = world_tok if which == "world" else other_tok
    for conv in coa_rows[:20]:
        ex = tokenize_conversation(conv.messages, tok)
        content = conv.messages[-1].content
        prompt = tok.prompt_ids(conv.messages[:-1])
        assert ex.tokens[: len(prompt)].tolist() == prompt and set(ex.labels[: len(prompt)]) == {Provenance.PROMPT}
        spans = tok.observation_spans(content)
        assert len(spans) == content.count("<begin_search>")  # 0 when answered from memory
        assert all(content[lo:hi].startswith("\n\n<search_result> ") for lo, hi in spans)
        assert all(content[lo:hi].endswith(" </search_result>\n\n") for lo, hi in spans)
        # observation tokens are exactly the tokens of the appended observations, encoded on their own
        obs = [t for t, l in zip(ex.tokens, ex.labels) if l == Provenance.OBSERVATION]
        assert obs == [i for lo, hi in spans for i in tok.encode(content[lo:hi])[0]]
        written = "".join(content[a:b] for a, b in _gaps(spans, len(content)))
        eot = tok.tokenizer.decode(tok.end_of_turn)
        model = [t for t, l in zip(ex.tokens, ex.labels) if l in (Provenance.POLICY, Provenance.ANSWER)]
        assert tok.tokenizer.decode(model) == written + eot
        assert ex.labels[-1] == Provenance.ANSWER and ex.tokens[-len(tok.end_of_turn):].tolist() == tok.end_of_turn
        think_end = content.index("</think>") + len("</think>")
        if which == "world":  # tags are whole tokens: the split at </think> is exact
            assert _texts(tok, ex, Provenance.POLICY) == written[: len(written) - len(content) + think_end]
            assert _texts(tok, ex, Provenance.ANSWER) == content[think_end:] + eot
        else:  # a token that starts before the end of </think> is POLICY (">\n\n" here)
            assert _texts(tok, ex, Provenance.ANSWER).endswith(content[think_end + 2:] + eot)
        kinds = {Provenance.PROMPT, Provenance.POLICY, Provenance.ANSWER}
        kinds |= {Provenance.OBSERVATION} if spans else set()
        assert set(np.unique(ex.labels)) == kinds


def _gaps(spans, end):
    at = 0
    for lo, hi in spans:
        yield at, lo
        at = hi
    yield at, end


def test_world_tokenizer_equals_whole_text_encoding(world_tok, coa_rows):
    """With the world tokenizer (tags are single tokens) encoding piece by piece changes nothing."""
    hf = world_tok.tokenizer
    for conv in coa_rows[:20]:
        whole = hf.apply_chat_template([m.to_json() for m in conv.messages], tokenize=True)
        whole = list(whole["input_ids"]) if hasattr(whole, "keys") else list(whole)
        assert tokenize_conversation(conv.messages, world_tok).tokens.tolist() == whole[:-1]  # but the last "\n"


def test_other_tokenizer_would_straddle(other_tok, coa_rows):
    """Encoding the whole text would glue `>` of `</end_search>` to the observation's newlines."""
    content = coa_rows[0].messages[-1].content
    ids, offsets = other_tok.encode(content)
    (lo, _), *_ = other_tok.observation_spans(content)
    assert any(a < lo < b for a, b in offsets)
    assert other_tok.end_of_turn == [other_tok.tokenizer.convert_tokens_to_ids("<|eot_id|>")]


def test_loss_masks_stage2_and_stage3(world_tok, coa_rows):
    examples = [tokenize_conversation(c.messages, world_tok) for c in coa_rows[:8]]
    batch, _ = collate_sft(examples, length=4096)
    m2 = batch.loss_mask(include_observations=False)
    m3 = batch.loss_mask(include_observations=True)
    obs = batch.labels == Provenance.OBSERVATION
    assert m2[obs].sum() == 0 and m3[obs].min() == 1 and (m3 - m2).sum() == obs.sum()
    assert m3[batch.labels == Provenance.PROMPT].sum() == 0 and m3[batch.segment_ids == 0].sum() == 0


def test_packing(world_tok, coa_rows):
    examples = load_sft_examples(os.path.join(tiny_teacher()[0], FILES["coa"]), world_tok)
    assert [e.tokens.tolist() for e in examples[:3]] == [
        tokenize_conversation(c.messages, world_tok).tokens.tolist() for c in coa_rows[:3]]
    longest = max(len(e) for e in examples)
    batch, stats = collate_sft(examples, length=1024 if longest <= 1024 else 2048)
    assert stats.examples == len(examples) and stats.truncated_examples == 0
    assert stats.efficiency > 0.9 and stats.real_tokens == sum(len(e) for e in examples)
    found = []
    for row in range(batch.tokens.shape[0]):
        seg = batch.segment_ids[row]
        ids = [s for s in np.unique(seg) if s]
        assert ids == list(range(1, len(ids) + 1)) and (seg[seg > 0] == np.sort(seg[seg > 0])).all()
        assert (batch.labels[row][seg == 0] == Provenance.PAD).all()
        for s in ids:
            where = seg == s
            assert (batch.positions[row][where] == np.arange(where.sum())).all()
            found.append(batch.tokens[row][where].tolist())
    assert sorted(found) == sorted(e.tokens.tolist() for e in examples)


def test_bucketing_and_truncation(world_tok, coa_rows):
    examples = [tokenize_conversation(c.messages, world_tok) for c in coa_rows[:6]]
    batch, stats = collate_sft(examples, length=4096, mode="bucket", rows=8)
    width = batch.tokens.shape[1]
    assert width & (width - 1) == 0 and width >= max(len(e) for e in examples) > width // 2
    assert batch.tokens.shape[0] == 8 and (batch.segment_ids[6:] == 0).all()
    assert stats.truncated_examples == 0
    cut, stats = collate_sft(examples, length=64)
    assert stats.truncated_examples == 6 and stats.truncated_tokens == sum(len(e) - 64 for e in examples)
    assert (cut.segment_ids > 0).sum() == 6 * 64
    assert tokenize_conversation(coa_rows[0].messages, world_tok, max_len=50).truncated == len(examples[0]) - 50
    with pytest.raises(ValueError, match="do not fit"):
        collate_sft(examples, length=64, rows=2)


def test_pairs_share_their_context(world_tok, other_tok):
    out, _ = tiny_teacher()
    for tok in (world_tok, other_tok):
        pairs, dropped = load_pair_examples(os.path.join(out, FILES["pairs"]), tok, max_len=4096)
        assert pairs and dropped == 0
        for mode in ("bucket", "pack"):
            batch, stats = collate_pairs(pairs[:6], max_len=4096, rows=8, mode=mode)
            assert batch.chosen.tokens.shape == batch.rejected.tokens.shape
            assert batch.pair_valid.sum() == 6 and stats.truncated_examples == 0
            for row, slot in zip(*np.nonzero(batch.pair_valid)):
                c, r = (b.segment_ids[row] == slot + 1 for b in (batch.chosen, batch.rejected))
                assert c.any() and r.any()  # the pair sits in the same row and segment of both halves
                for half, where in ((batch.chosen, c), (batch.rejected, r)):
                    assert half.loss_mask(include_observations=False)[row][where].sum() > 0
                lc = batch.chosen.labels[row][c]
                context = int(np.argmax(lc != Provenance.PROMPT))
                assert (batch.chosen.tokens[row][c][:context] == batch.rejected.tokens[row][r][:context]).all()


def test_pair_context_is_the_rollout_prefix(world_tok):
    out, _ = tiny_teacher()
    pair = read_contrastive_json(os.path.join(out, FILES["pairs"])).rows[0]
    prompt, prefix = split_prompt_prefix(pair.conversation[0].value)
    assert prefix.startswith("<think>\n") and prompt.endswith("\n")
    tp = tokenize_pair(pair, world_tok)
    expected = world_tok.prompt_ids([Message("user", prompt)]) + world_tok.encode(prefix)[0]
    assert tp.context.tolist() == expected
    as_turn = ContrastivePair((Turn("human", prompt), Turn("gpt", prefix)), pair.chosen, pair.rejected)
    same = tokenize_pair(as_turn, world_tok)
    assert same.context.tolist() == expected and same.chosen.tokens.tolist() == tp.chosen.tokens.tolist()
    ref = user_prompt("Who is X?", "reference")  # the reference instruction mentions <think> too
    assert split_prompt_prefix(ref + "<think>\nI need X.\n") == (ref, "<think>\nI need X.\n")
    assert split_prompt_prefix(ref) == (ref, "")
    assert tokenize_pair(pair, world_tok, max_len=len(expected)) is None  # no room for a continuation


def test_streams_are_resumable(world_tok, coa_rows):
    examples = [tokenize_conversation(c.messages, world_tok) for c in coa_rows]
    a = SFTStream(examples, rows=2, length=1024, seed=1)
    for _ in range(3):
        next(a)
    state = a.get_state()
    expected = [next(a) for _ in range(3)]
    b = SFTStream(examples, rows=2, length=1024, seed=1)
    b.set_state(state)
    for want in expected:
        got = next(b)
        assert got.tokens.shape == (2, 1024)
        assert (got.tokens == want.tokens).all() and (got.segment_ids == want.segment_ids).all()
    out, _ = tiny_teacher()
    pairs, _ = load_pair_examples(os.path.join(out, FILES["pairs"]), world_tok, max_len=2048)
    p = PairStream(pairs, rows=2, max_len=2048, mode="pack", pairs_per_row=4, seed=0)
    first = next(p)
    q = PairStream(pairs, rows=2, max_len=2048, mode="pack", pairs_per_row=4, seed=0)
    assert (next(q).chosen.tokens == first.chosen.tokens).all() and first.pair_valid.shape == (2, 4)


def _example(prompt: int, targets: int):
    from coa_jax.data.tokenize_sft import TokenizedExample
    labels = [int(Provenance.PROMPT)] * prompt + [int(Provenance.POLICY)] * targets
    return TokenizedExample(np.arange(len(labels), dtype=np.int32), np.asarray(labels, np.int8))


def test_stage_cut_warns_with_the_config_key_and_counts_lost_targets(caplog):
    from coa_jax.train.stages import cut_to_length
    fits, long = _example(10, 20), _example(40, 30)  # the long one loses 10 of its 30 targets at 60
    with caplog.at_level("WARNING", logger="coa_jax.train.stages"):
        out = cut_to_length([fits, long], 60, "2")
    assert [len(e) for e in out] == [30, 60]
    assert out[1].truncated == 10
    msg = caplog.text
    assert "sft2.max_len=60" in msg and "cuts 1 of 2 examples" in msg and "losing 10 of 50 target tokens" in msg
    caplog.clear()
    with caplog.at_level("WARNING", logger="coa_jax.train.stages"):
        cut_to_length([fits, _example(60, 0)], 40, "reasoner")  # only prompt tokens cut: nothing lost
    assert caplog.text == ""


@pytest.mark.parametrize("which", ["world", "other"])
def test_calls_as_prompt_labels_exactly_the_answered_calls(which, world_tok, other_tok):
    """The base reasoner's rows: a call the host answered is no target (nor its observation); the
    reasoning around it is; a call with no observation after it (a budget-limited or unfinished
    one) keeps its label, so data with such a call is not silently changed."""
    tok = world_tok if which == "world" else other_tok
    text = ("<think>\nI need the founder of Beta.\n<begin_search> Beta founded by </end_search>\n\n"
            "<search_result> result 1: \"Beta\"\nBeta was founded by Delta. </search_result>\n\n"
            "Beta was founded by Delta.\n<begin_search> Delta born </end_search>\n</think>\n\n\\boxed{Delta}")
    messages = [Message("user", "who founded Beta"), Message("assistant", text)]
    plain = tokenize_conversation(messages, tok)
    ex = tokenize_conversation(messages, tok, calls_as_prompt=True)
    np.testing.assert_array_equal(ex.tokens, plain.tokens)
    moved = plain.labels != ex.labels
    assert (ex.labels[moved] == int(Provenance.PROMPT)).all()
    assert tok.tokenizer.decode(ex.tokens[moved].tolist()).strip() == "<begin_search> Beta founded by </end_search>"
    policy = _texts(tok, ex, int(Provenance.POLICY))
    assert "I need the founder of Beta." in policy and "Beta was founded by Delta.\n" in policy
    assert "<begin_search> Delta born </end_search>" in policy  # unanswered: still the model's text
    assert _texts(tok, ex, int(Provenance.OBSERVATION)) == _texts(tok, plain, int(Provenance.OBSERVATION))
