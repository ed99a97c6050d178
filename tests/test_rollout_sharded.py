"""A rollout on a fake 8-device mesh equals the same rollout on one device (tokens and log-probs)."""

import dataclasses

import numpy as np
import pytest
import transformers

from coa_jax.data.world.build import build_world
from coa_jax.env.registry import ToolRegistry
from coa_jax.models.model_config import ModelConfig
from coa_jax.rollout.checker import check_trajectory
from coa_jax.rollout.config import RolloutConfig
from coa_jax.rollout.engine import RolloutEngine
from coa_jax.rollout.scripted import AgentScript, EchoSearch, agent_grammar, scripted_params
from model_fixtures import mesh_sharder, single_device_sharder

CFG = ModelConfig(vocab_size=1040, hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4, num_kv_heads=2,
                  max_position_embeddings=512, init_std=0.1)
GREEDY = RolloutConfig(batch_slots=4, max_prompt_tokens=32, max_response_tokens=96, max_actions=2,
                       answer_reserve=24, temperature=0.0, segment_steps=16)
SAMPLED = dataclasses.replace(GREEDY, temperature=0.8, top_p=0.9)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    build_world(root, seed=0, size="tiny")
    tok = transformers.AutoTokenizer.from_pretrained(str(root / "tokenizer"))
    grammar = agent_grammar(tok, AgentScript(p_search=0.5, p_answer=0.25), eos_id=tok.eos_token_id)
    head = tok.encode("<|im_start|>assistant\n<think>", add_special_tokens=False)
    prompts = [head + tok.encode("\n", add_special_tokens=False),
               head + tok.encode(" city was born</think>", add_special_tokens=False)]
    return tok, grammar, ToolRegistry([EchoSearch()]), prompts


@pytest.mark.parametrize("mesh,cfg", [((2, 2, 2), SAMPLED), ((4, 1, 2), GREEDY)], ids=["2x2x2-sampled", "4x1x2-greedy"])
def test_sharded_rollout_equals_single_device(setup, mesh, cfg):
    tok, grammar, registry, prompts = setup
    results = []
    for sharder in (single_device_sharder("sampling"), mesh_sharder(*mesh, role="sampling")):
        params = scripted_params(CFG, grammar, sharder)
        engine = RolloutEngine(CFG, sharder, cfg, tok, eos_ids=[tok.eos_token_id], registry=registry)
        results.append(engine.rollout(params, prompts, group_size=3, seed=3).trajectories)
    for one, many in zip(*results):
        assert one.token_ids.tolist() == many.token_ids.tolist()
        assert one.labels.tolist() == many.labels.tolist()
        np.testing.assert_allclose(one.logprobs, many.logprobs, atol=1e-5)
        assert check_trajectory(many, tok, cfg, env="real", registry=registry) == []
    assert sum(t.num_actions for t in results[1]) > 0
