"""Host-side pieces of the rollout and eval without a model: config checks, packing, metrics, data."""

import dataclasses

import numpy as np

from coa_jax.data.formats import QAPrompt, write_verl_parquet
from coa_jax.data.formats.messages import Message
from coa_jax.data.provenance import Provenance as P
from coa_jax.rollout.config import RolloutConfig
from coa_jax.rollout.eval_data import load_eval_items
from coa_jax.rollout.eval_metrics import format_table, report, score_response
from coa_jax.rollout.trajectory import Trajectory, pack_trajectories


def test_rollout_config_errors_name_the_field():
    assert RolloutConfig().errors() == []
    bad = RolloutConfig(batch_slots=0, answer_reserve=2000, env="moon", top_p=0.0, halts_per_segment=99)
    fields = {field for field, _ in bad.errors()}
    assert fields == {"batch_slots", "answer_reserve", "env", "top_p", "halts_per_segment"}


def _traj(n_prompt, labels, index=0):
    labels = [int(P.PROMPT)] * n_prompt + [int(x) for x in labels]
    n = len(labels)
    return Trajectory(index, index, 0, np.arange(n, dtype=np.int32), np.asarray(labels, np.int8),
                      np.where(np.asarray(labels) == int(P.POLICY), -0.5, 0.0).astype(np.float32), n_prompt, 0, (),
                      "answered", "", "")


def test_pack_trajectories_pads_with_pad_labels():
    a = _traj(3, [P.POLICY, P.OBSERVATION, P.POLICY])
    b = _traj(2, [P.POLICY], index=1)
    batch = pack_trajectories([a, b], length=8, pad_id=7)
    assert batch.tokens_BxL.shape == (2, 8) and batch.lengths_B.tolist() == [6, 3]
    assert batch.labels_BxL[1, 3:].tolist() == [int(P.PAD)] * 5 and batch.tokens_BxL[1, 3:].tolist() == [7] * 5
    assert batch.segment_ids_BxL.sum(axis=1).tolist() == [6, 3] and batch.prompt_lens_B.tolist() == [3, 2]
    np.testing.assert_array_equal(batch.logprobs_BxL[0, :6], a.logprobs)


def test_metrics_report_per_dataset_and_by_actions():
    rows = [
        score_response("nq", "<think> x </think>\n\n\\boxed{Paris}", ["Paris"], actions=1, forced=False),
        score_response("nq", "<think> x </think>\n\n\\boxed{Rome}", ["Paris"], actions=3, forced=True),
        score_response("hotpotqa", "no think \\boxed{yes}", ["yes"], actions=0, forced=False),
    ]
    rep = report(rows)
    nq = rep["datasets"]["nq"]
    assert (nq["n"], nq["em_strict"], nq["em_reference"], nq["mean_actions"], nq["forced_rate"]) == (2, 0.5, 0.5, 2.0, 0.5)
    assert nq["success_by_actions"] == {"1": {"n": 1, "em_reference": 1.0}, "3": {"n": 1, "em_reference": 0.0}}
    hotpot = rep["datasets"]["hotpotqa"]
    assert hotpot["em_strict"] == 1.0 and hotpot["em_reference"] == 0.0  # the reference gate needs </think>
    assert rep["all"]["n"] == 3 and "ALL" in format_table(rep)


def test_metrics_report_per_knowledge_tier_matches_numpy():
    rng = np.random.default_rng(0)
    datasets, tiers = rng.choice(["nq", "hotpotqa", "musique"], 40), rng.choice(["popular", "tail"], 40)
    right = rng.random(40) < 0.4
    rows = [score_response(str(d), f"<think> x </think>\n\n\\boxed{{{'Paris' if ok else 'Rome'}}}", ["Paris"],
                           actions=int(a), forced=False, tier=str(t))
            for d, t, ok, a in zip(datasets, tiers, right, rng.integers(0, 4, 40))]  # fmt: skip
    rep = report(rows)
    assert set(rep["tiers"]) == {"popular", "tail"}
    for tier in ("popular", "tail"):
        keep = tiers == tier
        assert rep["tiers"][tier]["n"] == keep.sum()
        assert rep["tiers"][tier]["em_reference"] == round(right[keep].mean(), 4)
        for d in ("nq", "hotpotqa", "musique"):
            cell = keep & (datasets == d)
            got = rep["datasets"][d]["tiers"].get(tier)
            assert (got["n"], got["em_reference"]) == (cell.sum(), round(right[cell].mean(), 4)) if cell.any() else got is None
    assert "ALL tail" in format_table(rep)
    # a source that does not say every question's tier gets no tier summaries, rather than a partial one
    assert "tiers" not in report(rows[:-1] + [dataclasses.replace(rows[-1], tier="")])
    assert "tiers" not in report([dataclasses.replace(r, tier="") for r in rows])["datasets"]["nq"]


def test_load_eval_items_limits_each_benchmark(tmp_path):
    def row(i, source):
        return QAPrompt("HotpotQA", (Message("user", f"Now, please answer the user's question below: q{i}?"),),
                        (f"a{i}",), index=i, extra={"id": f"id{i}", "source_file": source})

    rows = [row(i, "NQ_dev.json") for i in range(3)] + [row(i, "2WIKI_dev.json") for i in range(3, 5)]
    path = tmp_path / "eval.parquet"
    write_verl_parquet(path, rows)
    items = load_eval_items(str(path), limit=2)
    assert [(i.dataset, i.id, i.question, i.golds) for i in items] == [
        ("nq", "id0", "q0?", ("a0",)), ("nq", "id1", "q1?", ("a1",)),
        ("2wiki", "id3", "q3?", ("a3",)), ("2wiki", "id4", "q4?", ("a4",))]
    assert dataclasses.asdict(items[0])["messages"][0]["role"] == "user"
    assert {i.tier for i in items} == {""}  # the file does not say


def test_retrieval_rate_and_em_when_retrieved():
    """Which searched questions got a gold answer into their results, and how often those were then
    answered right: search failures and reading failures, told apart."""
    found = ("<think>\n<begin_search> q </end_search>\n\n<search_result> result 1: \"X\"\nX was born in Paris. "
             "</search_result>\n\n</think>\n\n\\boxed{%s}")
    missed = "<think>\n<begin_search> q </end_search>\n\n<search_result> about Lyon </search_result>\n\n</think>\n\n\\boxed{Paris}"
    rows = [score_response("nq", found % "Paris", ["Paris"], 1, False, tools=True),
            score_response("nq", found % "Rome", ["paris"], 1, False, tools=True),  # found, misread
            score_response("nq", missed, ["Paris"], 1, False, tools=True),  # guessed right without it
            score_response("nq", found % "Paris", ["Par"], 1, False, tools=True),  # whole words only
            score_response("nq", "<think> x </think>\n\n\\boxed{Paris}", ["Paris"], 0, False, tools=True)]
    assert [r.retrieved for r in rows] == [True, True, False, False, None]
    nq = report(rows)["datasets"]["nq"]
    assert (nq["searched"], nq["retrieval_rate"], nq["em_when_retrieved"]) == (4, 0.5, 0.5)
    # without a tool, results the model wrote itself are not searched
    assert score_response("nq", found % "Paris", ["Paris"], 1, False).retrieved is None
    assert "searched" not in report([score_response("nq", found % "Paris", ["Paris"], 1, False)])["all"]
    assert "EM|fnd" in format_table(report(rows))
