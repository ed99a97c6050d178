"""Scores of evaluated responses and the per-benchmark report (SPEC 3).

Per response: strict EM (SQuAD exact match of the last `\\boxed{}` after `</think>`), reference EM
(the AutoCoA reward: format gate, normalisation, 70% word overlap), token F1, whether it answered
(a `\\boxed{}` exists), and the number of actions. Per benchmark: their means, and success
(reference EM) by the number of actions taken (the paper's Fig. 3). Where the questions say which
knowledge tier they test (the embedded world's: "popular" facts the base model was trained on,
"tail" facts only in the search corpus), the same summaries per tier: the paper's known vs unknown
knowledge (its Appendix A), where a model without tools collapses on what it cannot know.

With tools, where a failure comes from: `retrieval_rate`, the share of questions that searched whose
results state a gold answer, and `em_when_retrieved`, reference EM over those (did the model read
what it found?).
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Sequence
from typing import Any

from coa_jax.env.answer_norm import squad_normalize
from coa_jax.env.rewards import boxed_prediction, em_reward, f1_reward, get_reward
from coa_jax.env.tags import SEARCH_SPEC, find_result_spans

ACTION_BINS = ("0", "1", "2", "3", "4", "5+")


@dataclasses.dataclass(frozen=True)
class Scored:
    """One evaluated response."""

    dataset: str
    em_strict: float
    em_reference: float
    f1: float
    answered: bool
    actions: int
    forced: bool
    tier: str = ""  # the question's knowledge tier ("" when its source does not say)
    retrieved: bool | None = None  # a search result states a gold answer (None: no search results)


def score_response(dataset: str, response_text: str, golds: Sequence[str], actions: int, forced: bool,
                   tier: str = "", *, tools: bool = False) -> Scored:  # fmt: skip
    """Scores of one response against its gold answers; `tools`: its search results came from a
    real tool (the model's own text is not searched for results otherwise)."""
    golds = list(golds)
    return Scored(dataset, em_reward(response_text, golds), get_reward("autocoa")(response_text, golds),
                  f1_reward(response_text, golds), bool(boxed_prediction(response_text)), actions, forced, tier,
                  retrieved_gold(response_text, golds) if tools else None)


def retrieved_gold(response_text: str, golds: Sequence[str]) -> bool | None:
    """Whether a search result in the text states a gold answer (SQuAD-normalised, whole words);
    None when the text holds no search result."""
    spans = find_result_spans(response_text, [SEARCH_SPEC])
    if not spans:
        return None
    found = " " + " ".join(squad_normalize(response_text[a:b]) for a, b, _ in spans) + " "
    return any(f" {g} " in found for g in (squad_normalize(g) for g in golds) if g)


def action_bin(actions: int) -> str:
    return ACTION_BINS[min(actions, len(ACTION_BINS) - 1)]


def _summary(rows: list[Scored]) -> dict[str, Any]:
    n = len(rows)

    def mean(values) -> float:
        values = list(values)
        return round(sum(values) / len(values), 4) if values else 0.0

    by_actions = collections.defaultdict(list)
    for r in rows:
        by_actions[action_bin(r.actions)].append(r.em_reference)
    searched = [r for r in rows if r.retrieved is not None]
    found = [r for r in searched if r.retrieved]
    return {
        "n": n,
        "em_strict": mean(r.em_strict for r in rows),
        "em_reference": mean(r.em_reference for r in rows),
        "f1": mean(r.f1 for r in rows),
        "mean_actions": mean(r.actions for r in rows),
        "answer_rate": mean(float(r.answered) for r in rows),
        "forced_rate": mean(float(r.forced) for r in rows),
        "success_by_actions": {b: {"n": len(by_actions[b]), "em_reference": mean(by_actions[b])}
                               for b in ACTION_BINS if by_actions[b]},
        **({"searched": len(searched), "retrieval_rate": mean(float(r.retrieved) for r in searched),
            "em_when_retrieved": mean(r.em_reference for r in found)} if searched else {}),
    }  # fmt: skip


def _groups(rows: Sequence[Scored], key) -> dict[str, list[Scored]]:
    groups = collections.defaultdict(list)
    for r in rows:
        groups[key(r)].append(r)
    return dict(sorted(groups.items()))


def _tiers(rows: Sequence[Scored]) -> dict[str, dict[str, Any]]:
    return {tier: _summary(v) for tier, v in _groups(rows, lambda r: r.tier).items()}


def report(rows: Sequence[Scored]) -> dict[str, Any]:
    """`{"datasets": {name: summary}, "all": summary}`, plus `"tiers": {tier: summary}` and each
    dataset's `"tiers"` when every row names its tier; a summary holds the means listed above."""
    tiered = bool(rows) and all(r.tier for r in rows)
    datasets = {}
    for name, group in _groups(rows, lambda r: r.dataset).items():
        datasets[name] = {**_summary(group), **({"tiers": _tiers(group)} if tiered else {})}
    rep: dict[str, Any] = {"datasets": datasets, "all": _summary(list(rows))}
    if tiered:
        rep["tiers"] = _tiers(rows)
    return rep


def format_table(rep: dict[str, Any]) -> str:
    """The report as a fixed-width text table."""
    head = (f"{'dataset':<12}{'n':>5}{'EM':>8}{'refEM':>8}{'F1':>8}{'acts':>7}{'answer':>8}{'found':>7}{'EM|fnd':>8}"
            "  success by actions")
    lines = [head]

    def line(name: str, s: dict[str, Any]) -> str:
        found = f"{s['retrieval_rate']:>7.2f}{s['em_when_retrieved']:>8.2f}" if "searched" in s else f"{'-':>7}{'-':>8}"
        return (f"{name:<12}{s['n']:>5}{s['em_strict']:>8.3f}{s['em_reference']:>8.3f}{s['f1']:>8.3f}"
                f"{s['mean_actions']:>7.2f}{s['answer_rate']:>8.2f}{found}")

    for name, s in list(rep["datasets"].items()) + [("ALL", rep["all"])]:
        bins = " ".join(f"{b}:{v['em_reference']:.2f}/{v['n']}" for b, v in s["success_by_actions"].items())
        lines.append(f"{line(name, s)}  {bins}")
    lines += [line(f"ALL {tier}", s) for tier, s in rep.get("tiers", {}).items()]
    return "\n".join(lines)
