"""Tags that a tokenizer splits into several tokens: stop variants, and a rollout that stops on them.

The tokenizer is the embedded world's byte-level BPE with the tag tokens removed, so
`</end_search>` is `<`, `/`, `end`, `_`, `search`, `>` (and `Ġ<` after a space), like in an
ordinary model's vocabulary.
"""

import json
import shutil

import numpy as np
import pytest
import transformers

from coa_jax.data.provenance import Provenance as P
from coa_jax.data.world.build import build_world
from coa_jax.env.registry import ToolRegistry
from coa_jax.models.model_config import ModelConfig
from coa_jax.rollout.checker import check_trajectory
from coa_jax.rollout.config import RolloutConfig
from coa_jax.rollout.engine import RolloutEngine
from coa_jax.rollout.sampler import ACTION, HALT, MARK
from coa_jax.rollout.scripted import EchoSearch, GrammarBuilder, scripted_params
from coa_jax.rollout.stops import build_stop_set, tag_variants
from model_fixtures import single_device_sharder

CFG = ModelConfig(vocab_size=1040, hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4, num_kv_heads=2,
                  max_position_embeddings=512, init_std=0.1)


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    build_world(root, seed=0, size="tiny")
    plain = root / "plain_tokenizer"
    shutil.copytree(root / "tokenizer", plain)
    spec = json.loads((plain / "tokenizer.json").read_text())
    spec["added_tokens"] = [t for t in spec["added_tokens"] if t["special"]]
    (plain / "tokenizer.json").write_text(json.dumps(spec))
    return transformers.AutoTokenizer.from_pretrained(str(plain))


def _enc(tok, text):
    return tok.encode(text, add_special_tokens=False)


def test_every_context_ends_with_a_variant(tok):
    tag = "</end_search>"
    assert len(_enc(tok, tag)) > 1
    variants = tag_variants(tok, tag)
    for context in ("query", "query ", "a query?", "x\n", "(q) ", "Paris.", "1985"):
        ids = _enc(tok, context + tag)
        assert any(tuple(ids[-len(v):]) == v for v in variants), (context, ids, variants)
        assert all(tok.decode(list(v)).endswith(tag[-len(tok.decode(list(v))):]) for v in variants)


def test_stop_set_kinds(tok):
    stops = build_stop_set(tok, [tok.eos_token_id], action_tags={"search": "</end_search>"},
                           result_tags={"search": ("<search_result>", "</search_result>")}, think_close="</think>")
    kinds = {e.name: e.kind for e in stops.entries}
    assert kinds == {"eos": HALT, "search": ACTION, "open:search": MARK, "close:search": MARK, "think_close": MARK}
    assert stops.sequences[0] == [tok.eos_token_id]


def test_rollout_stops_inside_a_multi_token_closing_tag(tok):
    eos = tok.eos_token_id
    think = [t for w in (" city", " was", " born") for t in _enc(tok, w)]
    call = _enc(tok, "<begin_search>") + _enc(tok, " capital") + _enc(tok, " year") + _enc(tok, " </end_search>")
    grammar = (GrammarBuilder().chain(_enc(tok, "\n") + think + call)
               .chain(_enc(tok, "{") + _enc(tok, " Paris") + _enc(tok, "}") + [eos]).build())
    sharder = single_device_sharder("sampling")
    registry = ToolRegistry([EchoSearch()])
    cfg = RolloutConfig(batch_slots=2, max_prompt_tokens=16, max_response_tokens=256, max_actions=2,
                        answer_reserve=24, temperature=0.0, segment_steps=16)
    engine = RolloutEngine(CFG, sharder, cfg, tok, eos_ids=[eos], registry=registry)
    prompt = _enc(tok, "<|im_start|>assistant\n")
    traj = engine.rollout(scripted_params(CFG, grammar, sharder), [prompt]).trajectories[0]
    assert check_trajectory(traj, tok, cfg, env="real", registry=registry) == []
    assert traj.num_actions == 2 and traj.forced == "actions" and traj.finish == "answered"
    assert [c.query for c in traj.tool_calls] == ["capital year"] * 3
    # every observation starts right after the last token of a complete closing tag
    starts = np.flatnonzero(np.diff(np.concatenate([[0], traj.labels == int(P.OBSERVATION)])) == 1)
    for start in starts:
        assert tok.decode(traj.token_ids[:start].tolist()).endswith("</end_search>")
    assert traj.response_text.endswith("\\boxed{ Paris}")
