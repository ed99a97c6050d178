"""Collect each sweep member's results.json and put the members side by side.

The comparison is the pipeline's Table 1 transposed: one line per method (Table 1 row), one
column per member, cells the all-datasets exact match x 100; a legend lists each member's
overrides, status and wall time. Members without results show "-".
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Sequence

from coa_jax.sweep.expand import Member


def collect(members: Sequence[Member], out_root: str | pathlib.Path, status: dict[str, str] | None = None
            ) -> list[dict]:
    """One record per member: name, overrides, status, and (if present) its results.json."""
    out_root = pathlib.Path(out_root)
    records = []
    for m in members:
        path = out_root / m.name / "results.json"
        results = json.loads(path.read_text()) if path.exists() else None
        state = (status or {}).get(m.name) or ("done" if results is not None else "missing")
        records.append({"name": m.name, "overrides": dict(m.overrides), "status": state,
                        "out": str(out_root / m.name), "results": results})
    return records


def _summary(results: dict | None) -> dict[str, dict[str, float]]:
    """Method label -> {em, f1, actions} (x 100 for the scores)."""
    if not results:
        return {}
    return {r["label"]: {"em": 100.0 * r["all"]["em_reference"], "f1": 100.0 * r["all"]["f1"],
                         "actions": r["all"]["mean_actions"]} for r in results.get("rows", [])}


def compare_json(records: Sequence[dict]) -> dict:
    """The comparison as data: members (overrides, status, time) and method -> member -> scores."""
    methods: dict[str, dict[str, dict]] = {}
    members = []
    for rec in records:
        timings = (rec["results"] or {}).get("timings_s", {})
        members.append({"name": rec["name"], "overrides": rec["overrides"], "status": rec["status"],
                        "out": rec["out"], "seconds": round(sum(timings.values()), 1) if timings else None})
        for label, scores in _summary(rec["results"]).items():
            methods.setdefault(label, {})[rec["name"]] = scores
    return {"members": members, "methods": methods}


def compare_markdown(records: Sequence[dict], *, metric: str = "em") -> str:
    """Legend of members, then methods x members (`metric`: em, f1 or actions)."""
    data = compare_json(records)
    cols = [f"m{i:02d}" for i in range(len(records))]
    lines = ["| member | overrides | status | time (s) |", "|---|---|---|---|"]
    for col, m in zip(cols, data["members"]):
        sets = ", ".join(f"{k}={v}" for k, v in m["overrides"].items()) or "(base)"
        lines.append(f"| {col} | {sets} | {m['status']} | {m['seconds'] if m['seconds'] is not None else '-'} |")
    title = {"em": "EM x 100, all datasets", "f1": "F1 x 100, all datasets", "actions": "mean actions"}[metric]
    lines += ["", f"| method ({title}) | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for label, by_member in data["methods"].items():
        cells = [by_member.get(m["name"], {}).get(metric) for m in data["members"]]
        lines.append(f"| {label} | " + " | ".join("-" if c is None else f"{c:.1f}" for c in cells) + " |")
    return "\n".join(lines) + "\n"
