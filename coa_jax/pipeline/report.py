"""results.md (the table and the paper's claims checked on it) and PNG plots."""

from __future__ import annotations

import json
import pathlib

import numpy as np

from coa_jax.pipeline.plan import MULTI_HOP, SINGLE_HOP, STAGES


def _em(row: dict, dataset: str) -> float | None:
    d = row["datasets"].get(dataset)
    return None if d is None else 100.0 * d["em_reference"]


def _avg(row: dict, datasets) -> float | None:
    vals = [v for v in (_em(row, d) for d in datasets) if v is not None]
    return sum(vals) / len(vals) if vals else None


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.1f}"


def paired_interval(a: dict, b: dict, datasets, *, draws: int = 2000, seed: int = 0) -> tuple[float, float] | None:
    """95% paired bootstrap interval of row a's macro-average EM x 100 over `datasets` minus row b's
    (the questions of each dataset resampled, the same draw for both rows); None without the
    rows' per-question scores."""
    qa, qb = a.get("per_question"), b.get("per_question")
    if not qa or not qb:
        return None
    diffs = [np.asarray([qa[i][1] - qb[i][1] for i in sorted(qa) if qa[i][0] == d and i in qb]) for d in datasets]
    diffs = [x for x in diffs if len(x)]
    if not diffs:
        return None
    rng = np.random.default_rng(seed)
    boot = 100 * np.mean([x[rng.integers(0, len(x), (draws, len(x)))].mean(axis=1) for x in diffs], axis=0)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return float(lo), float(hi)


def _vs(a: dict, b: dict, datasets) -> str:
    """" (difference 95% CI [lo, hi])" when the rows carry per-question scores."""
    ci = paired_interval(a, b, datasets)
    return "" if ci is None else f" (difference 95% CI [{ci[0]:+.1f}, {ci[1]:+.1f}])"


def claims(rows: list[dict]) -> list[tuple[str, bool, str]]:
    """The paper's directions, checked on our table: (claim, holds, numbers). A claim holds when the
    difference has the paper's sign; the paired bootstrap interval beside it says whether the test
    set can tell the difference from noise."""
    by = {r["label"]: r for r in rows}
    mh = {label: _avg(r, MULTI_HOP) or 0.0 for label, r in by.items()}
    out = []
    wf, alone = mh.get("Reasoner + workflow"), mh.get("Reasoner alone")
    if wf is not None and alone is not None:
        out.append(("workflow beats the model alone (multi-hop EM)", wf > alone,
                    f"{wf:.1f} vs {alone:.1f}" + _vs(by["Reasoner + workflow"], by["Reasoner alone"], MULTI_HOP)))
    agents = [r["label"] for r in rows if r["mode"] == "agent"]
    if wf is not None and agents:
        losers = [a for a in agents if mh[a] <= wf]
        weakest = min(agents, key=lambda a: mh[a])
        out.append(("every agent row beats the workflow (multi-hop EM)", not losers,
                    f"workflow {wf:.1f}; below it: {', '.join(losers) or 'none'}; weakest {weakest} {mh[weakest]:.1f}"
                    + _vs(by[weakest], by["Reasoner + workflow"], MULTI_HOP)))
    for rl, sft in (("SFT-1+2+3 + RL-1", "SFT-1+2+3"), ("SFT-1+2+3 + RL-1+2", "SFT-1+2+3"), ("SFT-1+2 + RL-2", "SFT-1+2")):
        if rl in by and sft in by:
            a, b = _avg(by[rl], MULTI_HOP + SINGLE_HOP) or 0.0, _avg(by[sft], MULTI_HOP + SINGLE_HOP) or 0.0
            out.append((f"RL adds to its SFT start: {rl} > {sft} (all-set EM)", a > b,
                        f"{a:.1f} vs {b:.1f}" + _vs(by[rl], by[sft], MULTI_HOP + SINGLE_HOP)))
    alone = by.get("Reasoner alone")
    if alone is not None and {"popular", "tail"} <= set(alone.get("tiers", {})):
        known, unknown = (100 * alone["tiers"][t]["em_reference"] for t in ("popular", "tail"))
        out.append(("without tools the model does worse on facts only in the corpus than on facts it was trained on "
                    "(tail vs popular EM)", unknown < known, f"{unknown:.1f} vs {known:.1f}"))
        tail = {r["label"]: 100 * r["tiers"]["tail"]["em_reference"] for r in rows
                if r["mode"] == "agent" and "tail" in r.get("tiers", {})}  # fmt: skip
        if tail:
            losers = [a for a, v in tail.items() if v <= unknown]
            out.append(("every agent row beats the model alone on facts only in the corpus (tail EM)", not losers,
                        f"model alone {unknown:.1f}; not above it: {', '.join(losers) or 'none'}"))
    sim_real, real = by.get("SFT-1+2+3 + RL-1+2"), by.get("SFT-1+2 + RL-2")
    if sim_real and real and real.get("real_tool_calls"):
        ratio = sim_real["real_tool_calls"] / real["real_tool_calls"]
        out.append(("sim-then-real spends <= 1/5 of all-real's real tool calls", ratio <= 0.2,
                    f"{sim_real['real_tool_calls']:.0f} vs {real['real_tool_calls']:.0f} ({ratio:.2f})"))
    return out


def write_markdown(results: dict, path: pathlib.Path) -> str:
    rows, datasets = results["rows"], results["datasets"]
    head = ["method", "mode"] + datasets + ["single-hop", "multi-hop", "avg", "F1", "actions", "found", "EM found",
                                            "real calls"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["label"], r["mode"]] + [_fmt(_em(r, d)) for d in datasets]
        a = r["all"]
        cells += [_fmt(_avg(r, SINGLE_HOP)), _fmt(_avg(r, MULTI_HOP)), _fmt(100 * a["em_reference"]),
                  _fmt(100 * a["f1"]), f"{a['mean_actions']:.2f}",
                  _fmt(100 * a["retrieval_rate"]) if "searched" in a else "-",
                  _fmt(100 * a["em_when_retrieved"]) if "searched" in a else "-",
                  f"{r['real_tool_calls']:.0f}" if "real_tool_calls" in r else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    text = "# Results on the embedded world (test split, reference EM x 100)\n\n" + "\n".join(lines) + "\n"
    text += ("\n`found`: of the questions that searched, the share whose results state a gold answer; `EM found`: "
             "EM over those (search failures vs reading failures).\n")
    text += f"\n{results['eval_questions']} test questions. Checks of the paper's directions:\n\n"
    for claim, holds, numbers in claims(rows):
        text += f"- [{'x' if holds else ' '}] {claim}: {numbers}\n"
    text += tier_table(rows)
    path.write_text(text)
    return text


def tier_table(rows: list[dict]) -> str:
    """Reference EM x 100 by knowledge tier, every set together and the multi-hop sets alone
    ("" when the rows carry no tiers): what the base model could know (popular) against what
    only the search corpus holds (tail)."""
    tiers = sorted({t for r in rows for t in r.get("tiers", {})})
    if not tiers:
        return ""

    def multi_hop(r: dict, tier: str) -> str:
        cells = [r["datasets"][d]["tiers"][tier] for d in MULTI_HOP
                 if tier in r["datasets"].get(d, {}).get("tiers", {})]  # fmt: skip
        n = sum(c["n"] for c in cells)
        return _fmt(100 * sum(c["em_reference"] * c["n"] for c in cells) / n if n else None)

    head = ["method", "mode"] + [f"{t} (n)" for t in tiers] + [f"multi-hop {t} (pooled)" for t in tiers]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["label"], r["mode"]]
        cells += [f"{_fmt(100 * r['tiers'][t]['em_reference'])} ({r['tiers'][t]['n']})" if t in r.get("tiers", {})
                  else "-" for t in tiers]  # fmt: skip
        cells += [multi_hop(r, t) for t in tiers]
        lines.append("| " + " | ".join(cells) + " |")
    return ("\n## By knowledge tier (popular: in the base model's training text; tail: only in the search "
            "corpus)\n\n" + "\n".join(lines) + "\n")


def write_plots(results: dict, out: pathlib.Path) -> list[pathlib.Path]:
    """training_curves.png (loss / reward per stage) and success_vs_actions.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, (ax_sft, ax_rl) = plt.subplots(1, 2, figsize=(12, 4))
    for stage in STAGES:
        f = out / stage.name / "metrics.jsonl"
        if not f.exists():
            continue
        recs = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        steps = [r["step"] for r in recs]
        if stage.kind == "sft":
            ax_sft.plot(steps, [r.get("loss") for r in recs], label=stage.name)
        else:
            ax_rl.plot(steps, [r.get("reward") for r in recs], label=stage.name)
    ax_sft.set(title="SFT loss", xlabel="step"), ax_sft.legend(fontsize=7)
    ax_rl.set(title="GRPO mean reward", xlabel="step"), ax_rl.legend(fontsize=7)
    fig.tight_layout()
    paths.append(out / "training_curves.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results["rows"]:
        bins = r["all"].get("success_by_actions", {})
        if r["mode"] == "model-only" or not bins:
            continue
        keys = list(bins)
        ax.plot(keys, [100 * bins[k]["em_reference"] for k in keys], marker="o", label=r["label"])
    ax.set(title="Success vs number of actions taken", xlabel="actions", ylabel="reference EM x 100")
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(out / "success_vs_actions.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths
