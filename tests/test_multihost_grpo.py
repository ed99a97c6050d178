"""GRPO as a pod on one machine: a short sim->real run as a 2-process x 4-device CPU pod (each
process rolls out its own prompts on its own devices, with its own tool loop) gives the losses,
rewards, tool calls and final weights of the same run in one process on 8 devices.

The policy is a scripted agent (coa_jax.rollout.scripted) exported as a checkpoint, so the run
surely searches; the reward (registered by the run's config file, in every process) pays for two
searches or more, so groups disagree and the updates are not zero.
"""

import json
import pathlib

import jax
import numpy as np
import pytest

from launch_helpers import ROOT, run_group

STEPS = 2
SETS = ["world.size=tiny", f"rl.steps={STEPS}", "rl.prompts_per_step=2", "rl.group_size=4", "rl.oversample=2", "rl.sim_fraction=0.5",
        "rl.reward=searched_twice", "rl.optim.lr=3e-4", "rl.loop.async_checkpoint=false",
        "rollout.max_prompt_tokens=128", "rollout.max_response_tokens=160", "env.max_obs_tokens=48", "rollout.batch_slots=8",
        "rollout.answer_reserve=24", "rollout.max_actions=3", "rollout.temperature=1.0"]
COMPARED = ("loss", "count", "grad_norm", "kl", "reward", "response_length", "actions_per_trajectory",
            "real_tool_calls", "simulated_tool_calls", "degenerate_groups", "update_informative_groups")

CONFIG = '''
from coa_jax.config.loading import load_config
from coa_jax.env.rewards import register_reward, reward_names


def searched_twice(solution, gold):
    return float(solution.count("<begin_search>") >= 2)


if "searched_twice" not in reward_names():
    register_reward("searched_twice", searched_twice)


def get_config(variant=None):
    return load_config("{root}/configs/default.py:tiny")
'''


def _metrics(run: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(base dir, config file, overrides, init): the world, the scripted agent, then the pod's run."""
    import transformers

    from coa_jax.data.world import build_world
    from coa_jax.models.model_config import ModelConfig
    from coa_jax.rollout.scripted import AgentScript, agent_grammar, scripted_params
    from coa_jax.train import workspace
    from model_fixtures import single_device_sharder

    base = tmp_path_factory.mktemp("multihost_grpo")
    build_world(base / "world", seed=0, size="tiny")
    tok = transformers.AutoTokenizer.from_pretrained(str(base / "world" / "tokenizer"))
    model = ModelConfig(vocab_size=1088, hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4,
                        num_kv_heads=2, max_position_embeddings=512, init_std=0.1)
    grammar = agent_grammar(tok, AgentScript(p_search=0.5, p_answer=0.25), eos_id=tok.eos_token_id)
    params = scripted_params(model, grammar, single_device_sharder("sampling"), context_scale=0.05)
    init = workspace.finish_stage(base / "agent", params, model, tok)
    config = base / "pod_config.py"
    config.write_text(CONFIG.format(root=ROOT))
    sets = SETS + [f"world.dir={base / 'world'}"]
    cmd = ["bash", str(ROOT / "launch/local_pod.sh"), "--processes", "2", "--devices", "4", "--timeout", "240", "--",
           "python", "-m", "coa_jax", "rl", "--env", "schedule", "--config", str(config), "--init", str(init),
           *[a for s in sets for a in ("--set", s)], "--out", str(base / "pod")]
    res = run_group(cmd, timeout=260)
    assert res.returncode == 0, res.stdout[-4000:]
    assert "[p0] stage rl-schedule done" in res.stdout and "[p1] stage rl-schedule done" in res.stdout
    return base, config, sets, init


@pytest.mark.slow
def test_pod_grpo_equals_one_process_on_eight_devices(runs):
    from coa_jax.config.loading import load_config
    from coa_jax.models.hf_import import read_model_config
    from coa_jax.models.loading import load_model
    from coa_jax.models.params import forward
    from coa_jax.train.rl_stage import run_rl
    from model_fixtures import single_device_sharder

    base, config, sets, init = runs
    assert jax.device_count() == 8 and jax.process_count() == 1
    run_rl(load_config(str(config), sets), "schedule", init=str(init), out=base / "single")
    pod, single = _metrics(base / "pod"), _metrics(base / "single")
    assert [r["step"] for r in pod] == [r["step"] for r in single] == list(range(1, STEPS + 1))
    assert [r["env_real"] for r in pod] == [0.0, 1.0]
    for a, b in zip(pod, single):  # the same trajectories; only reduction orders may differ
        for key in COMPARED:
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), (a["step"], key, a[key], b[key])
    # the run did something worth comparing: both environments acted, groups disagreed, weights moved
    assert pod[0]["simulated_tool_calls"] > 0 and pod[1]["real_tool_calls"] > 0 and pod[1]["actions_per_trajectory"] > 0
    assert any(0.0 < r["reward"] < 1.0 for r in pod) and all(r["grad_norm"] > 0 for r in pod)
    # dynamic sampling (rl.oversample=2): 4 groups rolled out a step, 2 slots updated; a slot holds
    # 2 candidates, so at least half the sampled groups that disagree (rounded up) reach the update
    for r in pod:
        informative = 4 - r["degenerate_groups"]
        assert -(-informative // 2) <= r["update_informative_groups"] <= min(2, informative), r
    summaries = [json.loads((base / run / "summary.json").read_text()) for run in ("pod", "single")]
    assert summaries[0]["real_tool_calls"] == summaries[1]["real_tool_calls"] == pod[1]["real_tool_calls"]

    one = single_device_sharder()
    model = read_model_config(base / "pod" / "hf")
    (_, start), (_, from_pod), (_, from_single) = (load_model(d, one) for d in (
        init, base / "pod" / "hf", base / "single" / "hf"))
    tokens = np.random.default_rng(0).integers(0, model.vocab_size, (2, 24)).astype(np.int32)
    positions = np.broadcast_to(np.arange(24, dtype=np.int32), tokens.shape)
    logits = [np.asarray(forward(model, p, tokens, positions)[0]) for p in (start, from_pod, from_single)]
    np.testing.assert_allclose(logits[1], logits[2], rtol=1e-4, atol=1e-4)
    assert np.abs(logits[1] - logits[0]).max() > 1e-3  # the updates changed the policy
