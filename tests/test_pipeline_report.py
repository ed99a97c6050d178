"""results.md: the table, the paper's directions checked on it, and the split by knowledge tier."""

from __future__ import annotations

from coa_jax.pipeline.report import claims, tier_table, write_markdown


def _summary(n: int, em: float) -> dict:
    return {"n": n, "em_reference": em, "em_strict": em, "f1": em, "mean_actions": 1.0}


def _row(label: str, mode: str, cells: dict) -> dict:
    """cells: dataset -> tier -> (n, em)."""
    datasets = {d: {**_summary(sum(n for n, _ in t.values()), 0.0),
                    "tiers": {k: _summary(n, em) for k, (n, em) in t.items()}} for d, t in cells.items()}  # fmt: skip
    tiers = {}
    for t in {k for c in cells.values() for k in c}:
        pairs = [c[t] for c in cells.values() if t in c]
        n = sum(p[0] for p in pairs)
        tiers[t] = _summary(n, sum(p[0] * p[1] for p in pairs) / n)
    for d in datasets.values():
        d["em_reference"] = sum(s["n"] * s["em_reference"] for s in d["tiers"].values()) / d["n"]
    return {"label": label, "mode": mode, "datasets": datasets, "tiers": tiers,
            "all": {**_summary(1, 0.5)}}  # fmt: skip


def test_tier_table_pools_the_multi_hop_sets_by_question_count():
    # hotpotqa: 10 popular at 0.5, 30 tail at 0.1; musique: 30 tail at 0.3 (no popular question)
    row = _row("Reasoner alone", "model-only",
               {"hotpotqa": {"popular": (10, 0.5), "tail": (30, 0.1)}, "musique": {"tail": (30, 0.3)},
                "nq": {"popular": (20, 1.0), "tail": (20, 0.0)}})  # fmt: skip
    table = tier_table([row])
    line = next(line for line in table.splitlines() if line.startswith("| Reasoner alone"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    # all sets: popular 10*0.5 + 20*1.0 over 30; tail 30*0.1 + 30*0.3 + 0 over 80
    assert cells[2:] == ["83.3 (30)", "15.0 (80)", "50.0", "20.0"]
    assert "multi-hop tail (pooled)" in table


def test_results_markdown_has_the_tier_table_only_when_rows_carry_tiers(tmp_path):
    row = _row("SFT-2", "agent", {"hotpotqa": {"tail": (4, 0.25)}})
    results = {"rows": [row], "datasets": ["hotpotqa"], "eval_questions": 4}
    assert "By knowledge tier" in write_markdown(results, tmp_path / "results.md")
    untiered = {**row, "tiers": {}}
    plain = write_markdown({**results, "rows": [untiered]}, tmp_path / "plain.md")
    assert "By knowledge tier" not in plain and "| SFT-2 | agent |" in plain


def test_claims_check_the_knowledge_tiers():
    alone = _row("Reasoner alone", "model-only", {"nq": {"popular": (10, 0.6), "tail": (30, 0.1)}})
    good = _row("SFT-2", "agent", {"nq": {"popular": (10, 0.5), "tail": (30, 0.4)}})
    bad = _row("SFT-1", "agent", {"nq": {"popular": (10, 0.9), "tail": (30, 0.1)}})
    found = {claim: (holds, numbers) for claim, holds, numbers in claims([alone, good, bad])}
    collapse = next(v for k, v in found.items() if k.startswith("without tools"))
    assert collapse == (True, "10.0 vs 60.0")
    agents = next(v for k, v in found.items() if k.startswith("every agent row beats the model alone"))
    assert agents == (False, "model alone 10.0; not above it: SFT-1")  # equal is not above
    assert not any("tail" in k for k, *_ in claims([{**alone, "tiers": {}}, good]))


def test_paired_interval_matches_the_normal_approximation_and_its_edge_cases():
    import numpy as np

    from coa_jax.pipeline.report import paired_interval

    rng = np.random.default_rng(1)
    n, datasets = 600, ("hotpotqa", "musique")
    em = {d: (rng.random(n) < 0.5, rng.random(n) < 0.4) for d in datasets}
    a = {"per_question": {f"{d}-{i}": [d, float(em[d][0][i])] for d in datasets for i in range(n)}}
    b = {"per_question": {f"{d}-{i}": [d, float(em[d][1][i])] for d in datasets for i in range(n)}}
    lo, hi = paired_interval(a, b, datasets)
    diffs = [em[d][0].astype(float) - em[d][1] for d in datasets]
    point = 100 * np.mean([x.mean() for x in diffs])
    se = 100 * 0.5 * np.sqrt(sum(x.var() / n for x in diffs))  # the macro average of two independent means
    assert abs(lo - (point - 1.96 * se)) < 0.8 and abs(hi - (point + 1.96 * se)) < 0.8
    assert paired_interval(a, a, datasets) == (0.0, 0.0)
    better = {"per_question": {k: [d, 1.0] for k, (d, _) in b["per_question"].items()}}
    worse = {"per_question": {k: [d, 0.0] for k, (d, _) in b["per_question"].items()}}
    assert paired_interval(better, worse, datasets) == (100.0, 100.0)
    assert paired_interval(a, {"per_question": {}}, datasets) is None and paired_interval(a, b, ("nq",)) is None
