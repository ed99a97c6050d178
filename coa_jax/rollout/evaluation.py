"""Evaluation runs in the three modes of SPEC 3: the model alone, a workflow, the agent.

  model-only  the dataset's prompt, tools off (a call the model writes is plain text)
  workflow    K controller-driven searches, then the model answers (`workflow.run_workflow`)
  agent       the model decides when to search (the rollout engine, real tools)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

from coa_jax.env.registry import ToolRegistry
from coa_jax.models.model_config import ModelConfig
from coa_jax.models.params import Params
from coa_jax.models.tokenizer import eos_ids
from coa_jax.rollout.config import RolloutConfig
from coa_jax.rollout.engine import RolloutEngine
from coa_jax.rollout.eval_data import EvalItem, prompt_ids
from coa_jax.rollout.eval_metrics import Scored, score_response
from coa_jax.rollout.host_io import bucket
from coa_jax.rollout.trajectory import Trajectory
from coa_jax.rollout.workflow import run_workflow
from coa_jax.sharding.rules import Sharder

MODES = ("model-only", "workflow", "agent", "rag")  # rag: one search with the question, then read


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """Budgets and sampling of an evaluation run (greedy by default)."""

    mode: str = "agent"
    batch_slots: int = 8
    max_response_tokens: int = 1024
    max_actions: int = 10
    answer_reserve: int = 64
    temperature: float = 0.0
    workflow_rounds: int = 4
    query_tokens: int = 32
    seed: int = 0

    def errors(self) -> list[tuple[str, str]]:
        out = [] if self.mode in MODES else [("mode", f"must be one of {MODES}, got {self.mode!r}")]
        if self.workflow_rounds < 1:
            out.append(("workflow_rounds", f"must be >= 1, got {self.workflow_rounds}"))
        return out + self.rollout_config(1).errors()

    def rollout_config(self, max_prompt_tokens: int, **overrides: Any) -> RolloutConfig:
        base = RolloutConfig(batch_slots=self.batch_slots, max_prompt_tokens=max_prompt_tokens,
                             max_response_tokens=self.max_response_tokens, max_actions=self.max_actions,
                             answer_reserve=self.answer_reserve, temperature=self.temperature, seed=self.seed)
        return dataclasses.replace(base, **overrides)


@dataclasses.dataclass(frozen=True)
class EvalRecord:
    """One evaluated question."""

    item: EvalItem
    response_text: str
    trajectory: Trajectory
    scored: Scored
    queries: tuple[str, ...] = ()  # workflow: the controller's queries

    def to_json(self, mode: str) -> dict[str, Any]:
        t = self.trajectory
        return {
            "id": self.item.id, "dataset": self.item.dataset, "tier": self.item.tier, "question": self.item.question,
            "golds": list(self.item.golds), "mode": mode, "response_text": self.response_text,
            **{k: getattr(self.scored, k) for k in ("em_strict", "em_reference", "f1", "answered", "actions", "retrieved")},
            "finish": t.finish, "forced": t.forced, "workflow_queries": list(self.queries),
            "tool_calls": [dataclasses.asdict(c) for c in t.tool_calls],
            "prompt_len": t.prompt_len, "token_ids": t.token_ids.tolist(), "labels": t.labels.tolist(),
        }  # fmt: skip


def evaluate(cfg: ModelConfig, params: Params, sharder: Sharder, tokenizer, items: Sequence[EvalItem],
             settings: EvalSettings, registry: ToolRegistry | None = None) -> tuple[list[EvalRecord], float]:
    """Runs `settings.mode` on every item; returns (records in item order, seconds).

    Raises:
      ValueError: bad settings, or a mode with tools but no registry.
    """
    problems = settings.errors()
    if problems:
        raise ValueError("; ".join(f"{k}: {m}" for k, m in problems))
    if settings.mode != "model-only" and registry is None:
        raise ValueError(f"mode {settings.mode!r} needs a retriever")
    eos = eos_ids(tokenizer)
    start = time.perf_counter()
    if settings.mode in ("workflow", "rag"):
        query_cfg = settings.rollout_config(1024, max_response_tokens=settings.query_tokens + 2, answer_reserve=2,
                                            answer_trigger="\n", answer_trigger_after_think="\n")
        query_engine = RolloutEngine(cfg, sharder, query_cfg, tokenizer, eos_ids=eos)
        params = query_engine.prepare_params(params)

        def answer_engine(longest: int) -> RolloutEngine:
            return RolloutEngine(cfg, sharder, settings.rollout_config(bucket(longest)), tokenizer, eos_ids=eos)

        results = run_workflow(query_engine, answer_engine, params, tokenizer, registry, items,
                               rounds=1 if settings.mode == "rag" else settings.workflow_rounds, seed=settings.seed,
                               question_first=settings.mode == "rag")
        records = [EvalRecord(item, r.response_text, r.trajectory,
                              score_response(item.dataset, r.response_text, item.golds, len(r.queries),
                                             bool(r.trajectory.forced), item.tier, tools=True), r.queries)
                   for item, r in zip(items, results)]  # fmt: skip
        return records, time.perf_counter() - start
    prompts = [prompt_ids(tokenizer, i.messages) for i in items]
    agent = settings.mode == "agent"
    engine = RolloutEngine(cfg, sharder, settings.rollout_config(bucket(max(len(p) for p in prompts))), tokenizer,
                           eos_ids=eos, registry=registry if agent else None)
    trajectories = engine.rollout(engine.prepare_params(params), prompts, env="real" if agent else "none",
                                  seed=settings.seed).trajectories
    records = [EvalRecord(item, t.response_text, t,
                          score_response(item.dataset, t.response_text, item.golds, t.num_actions, bool(t.forced),
                                         item.tier, tools=agent))
               for item, t in zip(items, trajectories)]  # fmt: skip
    return records, time.perf_counter() - start
