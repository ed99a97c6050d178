"""The agent rollout engine against a slow reference that recomputes the whole sequence each step.

The policy is a scripted decoder (coa_jax.rollout.scripted): real weights that walk a designed
token grammar, so actions surely happen: think words, `<begin_search> capital year </end_search>`,
and (from a prompt ending in `</think>`) `\\boxed{ Paris}` eos. Tools are an echo search.
"""

import dataclasses
import functools

import numpy as np
import pytest
import transformers

import jax
import jax.numpy as jnp

from coa_jax.data.provenance import Provenance as P
from coa_jax.data.provenance import loss_mask
from coa_jax.data.world.build import build_world
from coa_jax.env.registry import ToolRegistry
from coa_jax.models.model_config import ModelConfig
from coa_jax.models.params import forward
from coa_jax.rollout.checker import check_trajectory
from coa_jax.rollout.config import RolloutConfig
from coa_jax.rollout.engine import RolloutEngine
from coa_jax.rollout.sampling import row_keys, sample_tokens
from coa_jax.rollout.scripted import AgentScript, EchoSearch, Grammar, agent_grammar, scripted_params
from coa_jax.train.logprobs import token_logprobs
from model_fixtures import single_device_sharder

CFG = ModelConfig(vocab_size=1040, hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4, num_kv_heads=2,
                  max_position_embeddings=512, init_std=0.1)
ROLLOUT = RolloutConfig(batch_slots=4, max_prompt_tokens=32, max_response_tokens=128, max_actions=2,
                        answer_reserve=24, temperature=0.0, segment_steps=16)
SAMPLED = dataclasses.replace(ROLLOUT, temperature=1.0, top_k=3)


def _one_token(tok, text):
    ids = tok.encode(text, add_special_tokens=False)
    assert len(ids) == 1, (text, ids)
    return ids[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    build_world(root, seed=0, size="tiny")
    return transformers.AutoTokenizer.from_pretrained(str(root / "tokenizer"))


@pytest.fixture(scope="module")
def setup(world):
    tok = world
    eos = tok.eos_token_id
    grammar = agent_grammar(tok, AgentScript(p_search=0.6, p_answer=0.3), eos_id=eos)
    # a second entry: a prompt ending in " and" thinks forever without searching
    loop = [_one_token(tok, w) for w in (" and", " of", " is")]
    transitions = dict(grammar.transitions)
    transitions.update({loop[0]: {loop[1]: 1.0}, loop[1]: {loop[2]: 1.0}, loop[2]: {loop[1]: 1.0}})
    grammar = Grammar(transitions)
    sharder = single_device_sharder("sampling")
    params = scripted_params(CFG, grammar, sharder)
    tool = EchoSearch()
    registry = ToolRegistry([tool])
    engine = RolloutEngine(CFG, sharder, ROLLOUT, tok, eos_ids=[eos], registry=registry)
    sampled = RolloutEngine(CFG, sharder, SAMPLED, tok, eos_ids=[eos], registry=registry)
    head = tok.encode("<|im_start|>user\nWhere?<|im_end|>\n<|im_start|>assistant\n<think>", add_special_tokens=False)
    prompts = {
        "search": head + tok.encode("\n", add_special_tokens=False),
        "answer": head + tok.encode(" city</think>", add_special_tokens=False),
        "think": head + [_one_token(tok, " and")],
    }
    return dict(tok=tok, eos=eos, params=params, tool=tool, registry=registry, engine=engine, sampled=sampled,
                prompts=prompts)


def reference_rollout(s, cfg: RolloutConfig, prompt, index, env, *, seed=0, max_actions=None, max_tokens=None):
    """Algorithm 1, one trajectory, no KV cache: every token recomputes the whole sequence."""
    tok, registry, params = s["tok"], s["registry"], s["params"]
    t_max = cfg.max_actions if max_actions is None else max_actions
    n_max = cfg.max_response_tokens if max_tokens is None else max_tokens
    ids, p = list(prompt), len(prompt)
    actions = limited = 0
    forced = ""

    def append(text):
        ids.extend(tok.encode(text, add_special_tokens=False))

    def fits(text):
        return len(ids) - p + len(tok.encode(text, add_special_tokens=False)) <= n_max - cfg.answer_reserve

    def force(reason):
        nonlocal forced
        thinking_done = "</think>" in tok.decode(ids[p:])
        append(cfg.answer_trigger_after_think if thinking_done else cfg.answer_trigger)
        forced = reason

    while True:
        padded = np.zeros((1, 256), np.int32)
        padded[0, :len(ids)] = ids
        logits = _full_logits(params, jnp.asarray(padded))[len(ids) - 1]
        keys = row_keys(jax.random.key(seed), jnp.asarray([index], jnp.uint32), jnp.asarray([len(ids)]))
        token = int(sample_tokens(logits[None], keys, cfg.sampling)[0][0])
        ids.append(token)
        if token == s["eos"]:
            return ids, actions, "answered", forced
        text = tok.decode(ids[p:])
        action = registry.parse_action(text) if text.endswith("</end_search>") and not forced else None
        if action is not None and env == "simulated" and actions < t_max:
            actions += 1
        elif action is not None:
            if actions < t_max:
                obs = s["tool"].call([action.query])[0].text
                if fits(obs):
                    append(obs)
                    actions += 1
                else:
                    force("tokens")
            elif not limited and fits(registry.limit_result("search").text):
                append(registry.limit_result("search").text)
                limited = 1
            else:
                force("actions" if limited else "tokens")
        if len(ids) - p >= (n_max if forced else n_max - cfg.answer_reserve):
            if forced:
                return ids, actions, "length", forced
            force("tokens")


@jax.jit
def _full_logits(params, ids_1xL):
    return forward(CFG, params, ids_1xL, jnp.arange(ids_1xL.shape[1])[None])[0][0]


@functools.partial(jax.jit, static_argnames="temperature")
def _teacher_forced(params, ids_1xL, segments_1xL, temperature):
    positions = jnp.arange(ids_1xL.shape[1])[None]
    return token_logprobs(CFG, params, ids_1xL, positions, segments_1xL, temperature=temperature)[0][0]


def _check(s, traj, cfg, env):
    assert check_trajectory(traj, s["tok"], cfg, env=env, registry=s["registry"]) == []


@pytest.mark.parametrize("env", ["real", "simulated"])
def test_greedy_rollout_equals_slow_reference(setup, env):
    s = setup
    prompts = [s["prompts"]["search"], s["prompts"]["answer"], s["prompts"]["think"]]
    result = s["engine"].rollout(s["params"], prompts, group_size=2, env=env)
    assert [t.index for t in result.trajectories] == list(range(6))
    for traj in result.trajectories:
        _check(s, traj, ROLLOUT, env)
        if traj.sample == 1:  # greedy: both samples of a prompt are the same
            assert traj.token_ids.tolist() == result.trajectories[traj.index - 1].token_ids.tolist()
            continue
        ids, actions, finish, forced = reference_rollout(s, ROLLOUT, prompts[traj.prompt_index], traj.index, env)
        assert traj.token_ids.tolist() == ids
        assert (traj.num_actions, traj.finish, traj.forced) == (actions, finish, forced)
    search, answer, think = result.trajectories[0], result.trajectories[2], result.trajectories[4]
    assert search.num_actions == 2 and search.forced == "actions" and search.finish == "answered"
    assert answer.num_actions == 0 and not answer.forced and answer.response_text == "\\boxed{ Paris}"
    assert think.forced == "tokens" and think.finish == "answered"


def test_sampled_rollout_equals_slow_reference_and_ignores_batch_composition(setup):
    s = setup
    prompts = [s["prompts"]["search"], s["prompts"]["think"], s["prompts"]["search"]]
    result = s["sampled"].rollout(s["params"], prompts, group_size=3, seed=7)  # 9 rows in 4 slots
    alone = s["sampled"].rollout(s["params"], prompts[:1], group_size=3, seed=7)
    for a, b in zip(alone.trajectories, result.trajectories[:3]):
        assert a.token_ids.tolist() == b.token_ids.tolist()
        np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-5)
    assert len({tuple(t.token_ids) for t in result.trajectories}) > 3  # the samples differ
    for traj in result.trajectories[2:5]:
        ids, actions, finish, forced = reference_rollout(s, SAMPLED, prompts[traj.prompt_index], traj.index, "real",
                                                         seed=7)
        assert traj.token_ids.tolist() == ids and (traj.num_actions, traj.finish, traj.forced) == (actions, finish,
                                                                                                    forced)
    for traj in result.trajectories:
        _check(s, traj, SAMPLED, "real")


@pytest.mark.parametrize("env", ["real", "simulated"])
def test_sampler_logprobs_equal_teacher_forced_logprobs(setup, env):
    s = setup
    prompts = [s["prompts"]["search"], s["prompts"]["answer"], s["prompts"]["think"]]
    for engine, cfg in ((s["engine"], ROLLOUT), (s["sampled"], SAMPLED)):
        for traj in engine.rollout(s["params"], prompts, group_size=2, env=env).trajectories:
            n = len(traj.token_ids)
            ids, segments = np.zeros((1, 256), np.int32), np.zeros((1, 256), np.int32)
            ids[0, :n], segments[0, :n] = traj.token_ids, 1
            temperature = 1.0 if cfg.sampling.greedy else cfg.temperature
            ref = np.asarray(_teacher_forced(s["params"], ids, segments, temperature))[:n]
            m = traj.sampled_mask
            assert m.sum() > 0
            np.testing.assert_allclose(traj.logprobs[m], ref[m], atol=1e-4)


def test_labels_are_what_the_host_appended(setup):
    s = setup
    tok, trigger = s["tok"], s["engine"].trigger_ids
    for env in ("real", "simulated"):
        traj = s["engine"].rollout(s["params"], [s["prompts"]["search"]], env=env).trajectories[0]
        labels, ids = traj.labels, traj.token_ids
        obs = [tok.decode(ids[i:j]) for i, j in _runs(labels, P.OBSERVATION)]
        sim = [tok.decode(ids[i:j]) for i, j in _runs(labels, P.SIM_OBSERVATION)]
        limit = s["registry"].limit_result("search").text
        if env == "real":
            assert obs == [s["tool"].call(["capital year"])[0].text] * 2 + [limit] and sim == []
        else:
            assert obs == [limit] and sim == ["<search_result> in the</search_result>"] * 2
        (f0, f1), = _runs(labels, P.FORCED)
        assert ids[f0:f1].tolist() == trigger
        assert np.all(labels[f1:] == int(P.ANSWER))
        expected = np.isin(labels, [int(P.POLICY), int(P.ANSWER)]).astype(np.float32)
        np.testing.assert_array_equal(loss_mask(labels, include_observations=False), expected)
        assert np.all(traj.logprobs[~traj.sampled_mask] == 0)


def test_token_budget_forces_the_answer_and_caps_the_length(setup):
    s = setup
    cfg = dataclasses.replace(ROLLOUT, max_response_tokens=60, max_actions=5)
    result = s["engine"].rollout(s["params"], [s["prompts"]["search"]], max_response_tokens=60, max_actions=5)
    traj = result.trajectories[0]
    ids, actions, finish, forced = reference_rollout(s, ROLLOUT, s["prompts"]["search"], 0, "real", max_actions=5,
                                                     max_tokens=60)
    assert traj.token_ids.tolist() == ids
    assert traj.forced == "tokens" and traj.num_actions == actions == 1
    assert len(traj.response_ids) <= 60
    _check(s, traj, cfg, "real")


def test_slow_tools_overlap_with_decoding(setup):
    s = setup
    slow = EchoSearch(latency_s=1.5)
    engine = s["engine"]
    prompts = [s["prompts"]["search"], s["prompts"]["think"]]
    engine.rollout(s["params"], prompts, max_actions=1)  # compiled before timing
    registry, engine.registry = engine.registry, ToolRegistry([slow])
    try:
        result = engine.rollout(s["params"], prompts, max_actions=1)
    finally:
        engine.registry = registry
    searcher, thinker = result.trajectories
    assert searcher.tool_calls[0].wait_s >= 1.5
    assert thinker.wall_s < 1.5  # it decoded ~100 tokens while the search was out
    assert result.stats.idle_wait_s < 2 * 1.5


def test_checker_catches_broken_trajectories(setup):
    s = setup
    traj = s["engine"].rollout(s["params"], [s["prompts"]["search"]]).trajectories[0]
    assert check_trajectory(traj, s["tok"], ROLLOUT, env="real", registry=s["registry"]) == []
    obs = np.flatnonzero(traj.labels == int(P.OBSERVATION))
    broken = [
        dataclasses.replace(traj, labels=np.where(np.arange(len(traj.labels)) == obs[3], P.POLICY, traj.labels)),
        dataclasses.replace(traj, logprobs=np.where(np.arange(len(traj.labels)) == obs[0], -0.5, traj.logprobs)),
        dataclasses.replace(traj, num_actions=1),
        dataclasses.replace(traj, forced=""),
    ]
    for bad in broken:
        assert check_trajectory(bad, s["tok"], ROLLOUT, env="real", registry=s["registry"]) != []
    tight = dataclasses.replace(ROLLOUT, max_actions=1)
    assert check_trajectory(traj, s["tok"], tight, env="real", registry=s["registry"]) != []


def _runs(labels, label):
    hit = np.concatenate([[False], labels == int(label), [False]])
    edges = np.flatnonzero(hit[1:] != hit[:-1])
    return list(zip(edges[::2], edges[1::2]))
