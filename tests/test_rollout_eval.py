"""`python -m coa_jax eval` on the embedded world, in each mode, with a scripted checkpoint."""

import argparse
import json

import pytest
import transformers

from coa_jax.commands import eval as eval_command
from coa_jax.data.world.build import build_world
from coa_jax.models.hf_export import export_hf
from coa_jax.models.model_config import ModelConfig
from coa_jax.rollout.eval_data import load_eval_items
from coa_jax.rollout.eval_metrics import ACTION_BINS
from coa_jax.rollout.scripted import AgentScript, agent_grammar, scripted_params
from model_fixtures import single_device_sharder

CFG = ModelConfig(vocab_size=1040, hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4, num_kv_heads=2,
                  max_position_embeddings=2048, init_std=0.1)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    build_world(root, seed=0, size="tiny")
    tok = transformers.AutoTokenizer.from_pretrained(str(root / "tokenizer"))
    grammar = agent_grammar(tok, AgentScript(p_search=0.6, p_answer=0.3), eos_id=tok.eos_token_id)
    checkpoint = root / "checkpoint"
    export_hf(scripted_params(CFG, grammar, single_device_sharder("sampling")), CFG, checkpoint, tokenizer=tok)
    return root, checkpoint


def _args(world, tmp_path, mode, **extra):
    root, checkpoint = world
    parser = argparse.ArgumentParser()
    eval_command.add_arguments(parser)
    argv = ["--checkpoint", str(checkpoint), "--data", str(root / "questions" / "test.parquet"), "--mode", mode,
            "--limit", "1", "--out", str(tmp_path / f"{mode}.json"), "--batch-slots", "4",
            "--max-response-tokens", "384", "--max-actions", "2", "--answer-reserve", "24",
            "--workflow-rounds", "1", "--devices", "1"]
    if mode != "model-only":
        argv += ["--retriever", f"bm25:{root / 'corpus.jsonl'}"]
    for key, value in extra.items():
        argv += [f"--{key}", str(value)]
    return parser.parse_args(argv)


@pytest.mark.parametrize("mode", ["model-only", "workflow", "agent", "rag"])
def test_eval_runs_in_every_mode(world, tmp_path, mode):
    assert eval_command.run(_args(world, tmp_path, mode)) == 0
    rep = json.loads((tmp_path / f"{mode}.json").read_text())
    n_datasets = len({i.dataset for i in load_eval_items(str(world[0] / "questions" / "test.parquet"))})
    assert rep["all"]["n"] == n_datasets == len(rep["datasets"])
    for summary in rep["datasets"].values():
        assert set(summary) >= {"em_strict", "em_reference", "f1", "mean_actions", "answer_rate", "success_by_actions"}
        assert set(summary["success_by_actions"]) <= set(ACTION_BINS)
    rows = [json.loads(line) for line in (tmp_path / f"{mode}.trajectories.jsonl").read_text().splitlines()]
    assert len(rows) == n_datasets
    # the world's questions say which knowledge tier they test: the report splits by it
    assert {r["tier"] for r in rows} <= {"popular", "tail"} and all(r["tier"] for r in rows)
    assert sum(s["n"] for s in rep["tiers"].values()) == n_datasets
    actions = [r["actions"] for r in rows]
    if mode == "model-only":
        assert actions == [0] * n_datasets and all(not r["tool_calls"] for r in rows)
    elif mode == "workflow":  # the scripted model states no need ("I need ..."): the controller searches nothing
        # (tests/test_rollout_workflow.py drives the controller with needs)
        assert actions == [0] * n_datasets and all(not r["workflow_queries"] for r in rows)
    elif mode == "rag":  # one search with the question as written, its results before the answer
        assert actions == [1] * n_datasets and all(r["workflow_queries"] == [r["question"]] for r in rows)
        assert all("<search_result>" in r["response_text"] for r in rows)
    else:  # the scripted agent searches until its budget of 2 is spent
        assert all(a >= 1 for a in actions) and "Retrieval failed" not in rows[0]["response_text"]
        assert rows[0]["tool_calls"][0]["query"]


def test_generate_with_tools_prints_one_agent_trajectory(world, capsys):
    from coa_jax.commands import generate as generate_command

    root, checkpoint = world
    parser = argparse.ArgumentParser()
    generate_command.add_arguments(parser)
    args = parser.parse_args(["--checkpoint", str(checkpoint), "--prompt", "Who founded it?", "--chat",
                              "--tools", f"bm25:{root / 'corpus.jsonl'}", "--max-actions", "1",
                              "--max-new-tokens", "768", "--json"])
    assert generate_command.run(args) == 0
    traj = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert traj["num_actions"] == 1 and traj["tool_calls"][0]["query"] == "capital year"
    assert "<search_result>" in traj["response_text"] and 3 in traj["labels"]  # an observation was appended


def test_eval_prompts_in_the_style_the_checkpoints_run_trained_with(world, tmp_path):
    """A world's parquet files hold the reference's long instruction; a pipeline stage trained with
    the compact one (the default config) must be scored on that, or it reads an unfamiliar prompt."""
    from coa_jax.data.world.prompt import instruction

    run = tmp_path / "sft2"
    (run / "hf").mkdir(parents=True)
    assert eval_command.prompt_style(str(run / "hf"), "auto") == "file"  # not a coa_jax run: the file's prompts
    (run / "config.json").write_text(json.dumps({"stage": "sft2", "config": {"world": {"prompt_style": "compact"}}}))
    assert eval_command.prompt_style(str(run / "hf"), "auto") == "compact"
    assert eval_command.prompt_style(str(run / "hf"), "reference") == "reference"  # asked for: wins

    items = load_eval_items(str(world[0] / "questions" / "test.parquet"), limit=1)
    assert all(instruction("reference") in i.messages[0].content for i in items)
    compact = eval_command.restyle(items, "compact")
    assert [i.messages[0].content for i in compact] == [instruction("compact") + i.question + "\n" for i in items]
    assert [i.golds for i in compact] == [i.golds for i in items]
    assert eval_command.restyle(items, "file") == items
