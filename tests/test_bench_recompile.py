"""No XLA compilation after warm-up: the SFT step over bucketed lengths, and a repeated rollout.

A recompile inside a training or sampling loop costs seconds per step and hides in wall time;
these count compilations with `CompileCounter` (jax.monitoring's backend-compile events).
"""

import numpy as np
import pytest
import transformers

import jax

from coa_jax.bench.harness import CompileCounter
from coa_jax.data.world.build import build_world
from coa_jax.env.registry import ToolRegistry
from coa_jax.models.model_config import ModelConfig
from coa_jax.models.params import param_shardings
from coa_jax.rollout.config import RolloutConfig
from coa_jax.rollout.engine import RolloutEngine
from coa_jax.rollout.scripted import AgentScript, EchoSearch, agent_grammar, scripted_params
from coa_jax.train.logprobs import token_logprobs
from coa_jax.train.losses import masked_nll
from coa_jax.train.optimizer import OptimConfig, make_optimizer
from coa_jax.train.step import init_train_state, make_train_step
from model_fixtures import TINY, single_device_sharder, tiny_params

BUCKETS = (64, 128)  # row lengths a run pads to (see rollout.generate.bucket)


def _batch(rs, rows, length):
    fill = rs.randint(length // 2, length + 1, rows)
    segments = (np.arange(length)[None] < fill[:, None]).astype(np.int32)
    return {"tokens": rs.randint(0, TINY.vocab_size, (1, rows, length)).astype(np.int32),
            "positions": np.broadcast_to(np.arange(length, dtype=np.int32), (1, rows, length)).copy(),
            "segments": segments[None], "mask": (segments * (np.arange(length) > 0))[None].astype(np.float32)}


def test_train_step_over_bucketed_lengths_compiles_once_per_bucket():
    sharder = single_device_sharder()
    params = tiny_params()
    opt = make_optimizer(OptimConfig(lr=1e-3), 100, params)
    state = init_train_state(params, opt, param_shardings(TINY, sharder))
    state_sh = jax.tree.map(lambda x: x.sharding, state)

    def loss_fn(p, mb):
        logp, _ = token_logprobs(TINY, p, mb["tokens"], mb["positions"], mb["segments"], sharder)
        return masked_nll(logp, mb["mask"])

    steps = {}
    for length in BUCKETS:
        sh = sharder.sharding((None, "batch", "length"), (1, 4, length))
        steps[length] = make_train_step(loss_fn, opt, state_sh, {k: sh for k in ("tokens", "positions", "segments",
                                                                                  "mask")})
    rs = np.random.RandomState(0)
    for length in BUCKETS:  # warm-up: one compile per bucket
        state, _ = steps[length](state, _batch(rs, 4, length))
    with CompileCounter() as counter:
        for i in range(6):
            length = BUCKETS[i % 2]
            state, metrics = steps[length](state, _batch(rs, 4, length))
        jax.block_until_ready(metrics)
    assert counter.count == 0, f"compiled {counter.names} after warm-up"
    assert int(state.step) == 8


@pytest.fixture(scope="module")
def engine_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    build_world(root, seed=0, size="tiny")
    tok = transformers.AutoTokenizer.from_pretrained(str(root / "tokenizer"))
    cfg = ModelConfig(vocab_size=1040, hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4,
                      num_kv_heads=2, max_position_embeddings=512, init_std=0.1)
    sharder = single_device_sharder("sampling")
    params = scripted_params(cfg, agent_grammar(tok, AgentScript(p_search=0.5, p_answer=0.2),
                                                eos_id=tok.eos_token_id), sharder)
    rollout = RolloutConfig(batch_slots=4, max_prompt_tokens=32, max_response_tokens=128, max_actions=2,
                            answer_reserve=24, temperature=1.0, segment_steps=16)
    engine = RolloutEngine(cfg, sharder, rollout, tok, eos_ids=[tok.eos_token_id],
                           registry=ToolRegistry([EchoSearch()]))
    head = tok.encode("<|im_start|>user\nWhere?<|im_end|>\n<|im_start|>assistant\n<think>\n",
                      add_special_tokens=False)
    return engine, params, [head, head]


def test_repeated_rollout_compiles_nothing(engine_setup):
    engine, params, prompts = engine_setup
    first = engine.rollout(params, prompts, group_size=2, env="real", seed=3)  # warm-up
    with CompileCounter() as counter:
        again = engine.rollout(params, prompts, group_size=2, env="real", seed=3)
    assert [list(t.token_ids) for t in again.trajectories] == [list(t.token_ids) for t in first.trajectories]
    assert sum(t.num_actions for t in again.trajectories) > 0
    assert counter.count == 0, f"compiled {counter.names} in a rollout identical to the warm-up"
