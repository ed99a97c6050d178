"""Run the recipe: world -> teacher data -> every stage of the plan -> every table row evaluated.

Everything lands under one output directory; a rerun skips finished stages and evaluations and
resumes an unfinished one, so the pipeline can be killed at any point.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import pathlib
import time


from coa_jax.config.schema import Config
from coa_jax.data.formats.messages import Message
from coa_jax.data.world import load_world
from coa_jax.data.world.prompt import user_prompt
from coa_jax.models.loading import load_model
from coa_jax.models.tokenizer import load_tokenizer
from coa_jax.pipeline.plan import ROWS, STAGES, Row
from coa_jax.rollout.eval_data import EvalItem
from coa_jax.rollout.eval_metrics import report
from coa_jax.rollout.evaluation import EvalSettings, evaluate
from coa_jax.sharding.mesh import make_mesh
from coa_jax.sharding.rules import SAMPLING_RULES, Sharder
from coa_jax.train import workspace
from coa_jax.train.rl_stage import run_rl, run_summary
from coa_jax.train.stages import run_sft

log = logging.getLogger(__name__)
REPORT_FORMAT = 5  # 2: summaries per knowledge tier; 3: retrieval rate and EM when retrieved; 4: per question;
# 5: the workflow searches where the reasoning states a need


def run_pipeline(cfg: Config, out: str | pathlib.Path, *, settings: EvalSettings, eval_limit: int | None = None
                 ) -> dict:
    """Train every stage and evaluate every row; returns the results (also written to OUT)."""
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    world = workspace.world_dir(cfg, out)
    cfg = dataclasses.replace(cfg, world=dataclasses.replace(cfg.world, dir=str(world)))
    workspace.teacher_dir(cfg, world)
    timings = {}
    for stage in STAGES:
        t0 = time.perf_counter()
        init = str(out / stage.init) if stage.init else ""
        log.info("stage %s (%s %s) from %s", stage.name, stage.kind, stage.arg, init or "random init")
        if stage.kind == "sft":
            run_sft(cfg, stage.arg, init=init, out=out / stage.name)
        else:
            run_rl(cfg, stage.arg, init=init, out=out / stage.name)
        timings[stage.name] = round(time.perf_counter() - t0, 1)
    items = world_eval_items(cfg, world, limit=eval_limit)
    rows = []
    for row in ROWS:
        t0 = time.perf_counter()
        rows.append(evaluate_row(cfg, out, world, row, items, settings))
        timings[f"eval:{row.stage}:{row.mode}"] = round(time.perf_counter() - t0, 1)
    results = {"rows": rows, "datasets": sorted({i.dataset for i in items}), "eval_questions": len(items),
               "timings_s": timings, "world": str(world)}
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return results


def world_eval_items(cfg: Config, world: pathlib.Path, *, split: str = "test", limit: int | None = None
                     ) -> list[EvalItem]:
    """The world's test questions with the run's instruction style (limit: per dataset)."""
    counts: dict[str, int] = {}
    items = []
    for q in load_world(world).questions(split):
        counts[q.dataset] = counts.get(q.dataset, 0) + 1
        if limit is not None and counts[q.dataset] > limit:
            continue
        items.append(EvalItem(q.id, q.dataset, (Message("user", user_prompt(q.question, cfg.world.prompt_style)),),
                              q.question, tuple(q.golds), q.tier))
    return items


def evaluate_row(cfg: Config, out: pathlib.Path, world: pathlib.Path, row: Row, items: list[EvalItem],
                 settings: EvalSettings) -> dict:
    """Evaluate one row (cached in OUT/eval/<stage>__<mode>.json, reused only while the stage's
    weights, the settings and the questions are the ones it was computed from)."""
    cache = out / "eval" / f"{row.stage}__{row.mode}.json"
    hf = out / row.stage / "hf"
    key = eval_key(hf, dataclasses.replace(settings, mode=row.mode), items)
    if cache.exists():
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            return cached
        log.info("re-evaluating %s (%s): its weights, settings or questions changed", row.stage, row.mode)
    sharder = Sharder(make_mesh(cfg.mesh), SAMPLING_RULES)
    model_cfg, params = load_model(hf, sharder)
    tokenizer = load_tokenizer(hf)
    registry = workspace.build_registry(cfg, world, tokenizer) if row.mode != "model-only" else None
    try:
        records, seconds = evaluate(model_cfg, params, sharder, tokenizer, items,
                                    dataclasses.replace(settings, mode=row.mode), registry)
    finally:
        if registry is not None:
            registry.close()
    rep = report([r.scored for r in records])
    result = {"label": row.label, "stage": row.stage, "mode": row.mode, **rep, "seconds": round(seconds, 1),
              "key": key, "per_question": {r.item.id: [r.item.dataset, r.scored.em_reference] for r in records}}
    if row.rl_stage:
        result["real_tool_calls"] = run_summary(out / row.rl_stage)["real_tool_calls"]
    cache.parent.mkdir(parents=True, exist_ok=True)
    with (cache.parent / f"{row.stage}__{row.mode}.trajectories.jsonl").open("w") as f:
        for r in records:
            f.write(json.dumps(r.to_json(row.mode)) + "\n")
    cache.write_text(json.dumps(result, indent=2))
    return result


def eval_key(hf: pathlib.Path, settings: EvalSettings, items: list[EvalItem]) -> str:
    """What an evaluation depends on: the weights directory (each file's name, size and
    modification time: a retrained stage rewrites them), the settings and the question ids (with
    their tiers), and the report's format (`REPORT_FORMAT`: a newer format recomputes old results)."""
    h = hashlib.sha256(f"report {REPORT_FORMAT}\n".encode())
    for f in sorted(hf.iterdir()) if hf.is_dir() else ():
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    h.update(json.dumps(dataclasses.asdict(settings), sort_keys=True, default=str).encode())
    h.update("\n".join(f"{item.id}:{item.tier}" for item in items).encode())
    return h.hexdigest()[:16]
