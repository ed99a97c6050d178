"""Faults closed after the first reliability pass (RELIABILITY.md lists each with its test).

A stage's `hf/` appears only when complete; an RL training set with a prompt too long for the
rollout is refused when the stage starts; a tokenizer larger than the checkpoint's vocabulary is
refused; answers and golds that normalise to nothing earn no reward; a failed tool call records
why; any kept checkpoint step exports to a Hugging Face directory (and a missing one is named);
a run that aborts itself prints one line through the CLI.
"""

import concurrent.futures
import json
import pathlib
import time
import types

import numpy as np
import pytest
import safetensors.numpy

from coa_jax.config.errors import ConfigError
from coa_jax.config.loading import load_config
from coa_jax.env.registry import ToolRegistry, build_tool
from coa_jax.env.rewards import exact_match, get_reward, token_f1
from coa_jax.env.tags import Action
from coa_jax.models.model_config import ModelConfig
from coa_jax.models.tensor_sources import CheckpointError
from coa_jax.models.tokenizer import load_tokenizer
from coa_jax.rollout.config import RolloutConfig
from coa_jax.train import workspace
from coa_jax.train.rl_stage import check_prompt_lengths
from model_fixtures import single_device_sharder, tiny_params

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = ["--config", "configs/default.py:tiny", "--set", "world.size=tiny"]
SMALL = ModelConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4, num_kv_heads=2,
                    max_position_embeddings=256)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("followups")
    from coa_jax.data.world import build_world

    build_world(base / "world", seed=0, size="tiny")
    return base / "world"


# ---- 1. a stage's hf/ exists only when complete ---------------------------------------------------


def test_a_stage_export_killed_in_the_tokenizer_save_leaves_no_hf(world, tmp_path, monkeypatch):
    tokenizer, params = load_tokenizer(world / "tokenizer"), tiny_params(SMALL)
    out = tmp_path / "stage"
    out.mkdir()

    def disk_full(self, *args, **kwargs):
        raise OSError("No space left on device")

    with monkeypatch.context() as m:
        m.setattr(type(tokenizer), "save_pretrained", disk_full)
        with pytest.raises(OSError, match="No space left"):
            workspace.finish_stage(out, params, SMALL, tokenizer)
    assert not (out / "hf").exists()  # config.json was written, but only inside hf.partial
    hf = workspace.finish_stage(out, params, SMALL, tokenizer)  # the rerun: stale hf.partial replaced
    assert hf == out / "hf" and sorted(p.name for p in out.iterdir()) == ["hf"]
    names = {p.name for p in hf.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer_config.json"} <= names, names
    (hf / "stale.txt").write_text("from an earlier export")
    workspace.finish_stage(out, params, SMALL, tokenizer)  # an older hf/ is replaced whole
    assert not (hf / "stale.txt").exists() and sorted(p.name for p in out.iterdir()) == ["hf"]
    assert len(load_tokenizer(hf)) == len(tokenizer)


# ---- 2. RL prompts longer than the rollout allows: refused when the stage starts -------------------


def test_rl_prompt_lengths_are_checked_before_training():
    check_prompt_lengths([[1, 2], [3] * 32], 32)
    with pytest.raises(ConfigError, match=r"rollout\.max_prompt_tokens: prompt 1 has 33 tokens, prompt 3 has 0 "
                                          r"tokens; the limit is 32"):
        check_prompt_lengths([[1, 2], [3] * 33, [4], []], 32)
    with pytest.raises(ConfigError, match=r"prompt 0 has 40 tokens, prompt 1 has 40 tokens, prompt 2 has 40 "
                                          r"tokens \(and 2 more\)"):
        check_prompt_lengths([[5] * 40] * 5, 32)


def test_rl_command_refuses_a_long_training_prompt_at_the_start(world, tmp_path, capsys):
    from coa_jax.cli import main

    out = tmp_path / "rl"
    code = main(["rl", "--env", "sim", *TINY, "--set", f"world.dir={world}", "--set", "rl.prompts_per_step=2",
                 "--set", "rl.group_size=4", "--set", "rollout.batch_slots=8", "--set", "rollout.max_prompt_tokens=8",
                 "--set", "rollout.answer_reserve=8", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "rollout.max_prompt_tokens: prompt 0 has" in err and "the limit is 8" in err, err
    assert "Traceback" not in err and not (out / "checkpoints").exists()


# ---- 3. a tokenizer larger than the checkpoint's vocabulary -----------------------------------------


def test_a_tokenizer_larger_than_the_checkpoint_vocabulary_is_refused(world, tmp_path):
    from coa_jax.models.hf_export import export_hf

    cfg = load_config("configs/default.py:tiny", ["model.vocab_size=128", f"world.dir={world}"])
    sharder, tok_dir = single_device_sharder(), world / "tokenizer"
    n = len(load_tokenizer(tok_dir))
    model_cfg, params, _ = workspace.initial_model(cfg, "", sharder, tok_dir)  # random init: vocab raised
    assert model_cfg.vocab_size >= n > 128
    export_hf(params, model_cfg, tmp_path / "fits", tokenizer=load_tokenizer(tok_dir))
    assert workspace.initial_model(cfg, str(tmp_path / "fits"), sharder, None)[0].vocab_size == model_cfg.vocab_size
    export_hf(tiny_params(SMALL), SMALL, tmp_path / "small", tokenizer=load_tokenizer(tok_dir))
    with pytest.raises(CheckpointError, match=rf"has {n} tokens but the checkpoint .*small has vocab_size 128"):
        workspace.initial_model(cfg, str(tmp_path / "small"), sharder, None)


# ---- 4. golds and answers that normalise to nothing -------------------------------------------------


@pytest.mark.parametrize("name", ["autocoa", "em", "f1"])
def test_golds_and_answers_that_normalise_to_nothing_earn_nothing(name):
    reward = get_reward(name)
    say = lambda final: f"<think>\nx\n</think>\n\n{final}"  # noqa: E731
    for gold in ("the", "a", " . ", ["the", "An"]):
        for final in ("\\boxed{the}", "\\boxed{}", "\\boxed{An.}", "The."):
            assert reward(say(final), gold) == 0.0, (gold, final)
    assert reward(say("\\boxed{Paris}"), "the<ans_split>Paris") == 1.0  # the other golds still count
    assert reward(say("\\boxed{the}"), "Paris") == 0.0


def test_exact_match_and_f1_of_empty_normal_forms():
    assert exact_match("", "the") == 0.0 and exact_match("The", "a") == 0.0 and exact_match("", "") == 0.0
    assert token_f1("the", "the") == 0.0 and token_f1("", "") == 0.0
    assert exact_match("The Paris", ["the", "paris"]) == 1.0 and token_f1("Paris", "the Paris") == 1.0


# ---- 5. a failed tool call records why ----------------------------------------------------------------


def test_a_failed_tool_call_records_its_error_in_the_trajectory():
    """The host loop's tool collection, without a model: a calculator error, a failed batch, a success."""
    from coa_jax.rollout.host_io import ToolGroup
    from coa_jax.rollout.host_loop import Budget, HostLoop
    from coa_jax.rollout.rows import WAITING, Job
    from coa_jax.rollout.trajectory import Trajectory

    registry = ToolRegistry([build_tool("calc", "calculator")])
    codec = types.SimpleNamespace(encode=lambda text, add_special_tokens=False: [7] * 3)
    engine = types.SimpleNamespace(cfg=RolloutConfig(batch_slots=3, max_prompt_tokens=8, max_response_tokens=64,
                                                     answer_reserve=8), registry=registry, codec=codec)
    loop = HostLoop(engine, None, [Job(i, i, 0, (1, 2)) for i in range(3)], "real", Budget(2, 64, 8), None)
    loop._admit()
    records = list(loop.slots)
    calc = lambda q: Action("calc", q, 0, 0, True)  # noqa: E731
    answered = [calc("1/0"), calc("2+2")]
    lost = concurrent.futures.Future()
    lost.set_exception(ConnectionError("server went away"))
    loop.groups = [ToolGroup(registry.submit(answered), [0, 1], records[:2], answered, time.perf_counter()),
                   ToolGroup(lost, [2], records[2:], [calc("3*3")], time.perf_counter())]
    for rec in records:
        rec.phase = WAITING
    loop.groups[0].future.result(timeout=30)
    loop._collect_tools(block=False)
    [div0], [four], [gone] = (rec.calls for rec in records)
    assert not div0.ok and "zero" in div0.error.lower(), div0
    assert four.ok and four.error is None
    assert not gone.ok and gone.error == "ConnectionError: server went away"
    traj = Trajectory(0, 0, 0, np.zeros(2, np.int32), np.zeros(2, np.int8), np.zeros(2, np.float32), 1, 2,
                      (div0, four, gone), "answered", "", "")
    calls = json.loads(json.dumps(traj.to_json()))["tool_calls"]
    assert calls[0]["error"] == div0.error and "error" not in calls[1] and calls[2]["ok"] is False


# ---- 6. export any kept checkpoint step; 7. a run that aborts prints one line ----------------------


@pytest.fixture(scope="module")
def sft_run(world):
    from coa_jax.cli import main

    out = world.parent / "sft2"
    assert main(["sft", "--stage", "2", *TINY, "--set", f"world.dir={world}", "--set", "sft2.steps=3",
                 "--set", "sft2.batch_rows=8", "--set", "sft2.max_len=256", "--set", "sft2.loop.save_every=1",
                 "--set", "sft2.loop.keep_checkpoints=3", "--set", "sft2.loop.async_checkpoint=false",
                 "--out", str(out)]) == 0
    return out


def test_export_writes_the_named_checkpoint_step(sft_run, capsys):
    from coa_jax.cli import main
    from coa_jax.models.loading import load_model

    assert main(["export", "--run", str(sft_run), "--step", "2"]) == 0
    newest = sft_run.parent / "newest"
    assert main(["export", "--run", str(sft_run), "--out", str(newest)]) == 0  # default: the newest step, 3
    assert f"step 3 of {sft_run} exported to {newest}" in capsys.readouterr().out
    final = safetensors.numpy.load_file(str(sft_run / "hf" / "model.safetensors"))
    step3 = safetensors.numpy.load_file(str(newest / "model.safetensors"))
    step2 = safetensors.numpy.load_file(str(sft_run / "export-step-2" / "model.safetensors"))
    assert final.keys() == step3.keys() == step2.keys()
    for k in final:
        np.testing.assert_array_equal(step3[k], final[k], err_msg=k)
    assert any(not np.array_equal(step2[k], final[k]) for k in final)
    sharder = single_device_sharder()
    for path in (sft_run / "export-step-2", newest):
        model_cfg, params = load_model(path, sharder)
        assert model_cfg.vocab_size == json.loads((sft_run / "hf" / "config.json").read_text())["vocab_size"]
        assert len(load_tokenizer(path)) == len(load_tokenizer(sft_run / "hf"))
    assert main(["export", "--run", str(sft_run), "--step", "7"]) == 2
    err = capsys.readouterr().err
    assert "checkpoint step 7 in" in err and "does not exist; steps there: 1, 2, 3" in err, err
    assert main(["export", "--run", str(sft_run), "--step", "1", "--out", str(newest)]) == 2  # never overwritten
    assert "already exists" in capsys.readouterr().err


def test_export_of_a_damaged_step_names_it_and_moves_nothing(sft_run, tmp_path, capsys):
    """A named step never falls back to another, and the export (read-only) sets nothing aside."""
    import shutil

    from coa_jax.cli import main

    run = tmp_path / "run"
    shutil.copytree(sft_run, run, ignore=shutil.ignore_patterns("hf", "export-step-*"))
    biggest = max((p for p in (run / "checkpoints" / "2" / "state").rglob("*") if p.is_file()),
                  key=lambda p: p.stat().st_size)
    biggest.write_bytes(biggest.read_bytes()[:biggest.stat().st_size // 2])
    before = sorted(str(p) for p in run.rglob("*"))
    assert main(["export", "--run", str(run), "--step", "2"]) == 2
    err = capsys.readouterr().err
    assert "checkpoint step 2 in" in err and "other steps there: 1, 3" in err, err
    assert sorted(str(p) for p in run.rglob("*")) == before


def test_a_run_that_aborts_itself_prints_one_line(sft_run, monkeypatch, capsys):
    from coa_jax.cli import main
    from coa_jax.train import stages
    from coa_jax.train.loop import TrainingAborted

    def abort(*args, **kwargs):
        raise TrainingAborted("11 non-finite updates (steps [0, 1]) exceed max_nan_skips=10")

    monkeypatch.setattr(stages, "run_sft", abort)
    assert main(["sft", "--stage", "2", *TINY, "--out", str(sft_run.parent / "aborted")]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "error: TrainingAborted: 11 non-finite updates (steps [0, 1]) exceed max_nan_skips=10"
