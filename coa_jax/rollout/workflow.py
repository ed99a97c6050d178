"""The ReAct-style workflow baseline: an external controller, not the model, runs the searches.

The model reasons with tools off (it was never trained to call one). Each time its reasoning states
a missing fact, a *need* line ("I need the founder of X.", or "No result gives the founder of X."
after a search that did not give it), the controller cuts the generation there, asks the model
for a query that finds that need with a fixed query-writing prompt (the ReAct action's argument),
runs the search and writes the call and its observation into the model's context in the trajectory
format (`<begin_search> q </end_search>` + `<search_result> ... </search_result>`); the model then
continues. At most K searches per question; a question whose reasoning closes without a need line
is done. This is the baseline the paper's agent models beat: a script turns every stated need into
a search; the model never decides whether a search is worth making, nor sees a call of its own.

With `question_first`, the first search is the question as written, made before the model writes
anything: with one round it is retrieve-then-read (RAG), the diagnostic of whether a model reads
its results.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from coa_jax.data.formats.messages import Message
from coa_jax.data.formats.workflow import call_text, first_line, first_need, query_prompt
from coa_jax.env.registry import ToolRegistry
from coa_jax.env.tags import SEARCH_SPEC, Action
from coa_jax.models.params import Params
from coa_jax.rollout.engine import RolloutEngine
from coa_jax.rollout.eval_data import EvalItem, prompt_ids
from coa_jax.rollout.trajectory import Trajectory

@dataclasses.dataclass(frozen=True)
class WorkflowResult:
    """The controller's steps and the model's continuation for one question."""

    queries: tuple[str, ...]
    prefix: str  # the assistant turn before the final generation: reasoning up to each need, and the calls
    trajectory: Trajectory  # the final generation (its prompt ends with the prefix)

    @property
    def response_text(self) -> str:
        return self.prefix + self.trajectory.response_text


def run_workflow(query_engine: RolloutEngine, answer_engine: Callable[[int], RolloutEngine], params: Params, tokenizer,
                 registry: ToolRegistry, items: Sequence[EvalItem], *, rounds: int, seed: int = 0,
                 think_open: str = "<think>", question_first: bool = False) -> list[WorkflowResult]:
    """Runs the workflow for every item (generations and searches batched per round).

    Args:
      query_engine: writes the queries (env "none", a short budget).
      answer_engine: builds the engine of a reasoning generation (env "none") for a given longest
        prompt (known only once the controller's text is written).
      params: the model (in the engines' shardings).
      tokenizer: the model's tokenizer.
      registry: provides the "search" tool.
      items: the questions.
      rounds: K, the most searches per question.
      seed: sampling seed.
      think_open: opened in the assistant turn unless the chat template's generation prompt already
        ends with it.
      question_first: the first search is the question itself, before the model writes anything.
    """
    heads = [prompt_ids(tokenizer, item.messages) for item in items]
    texts = ["" if tokenizer.decode(h[-4:]).rstrip().endswith(think_open) else think_open + "\n" for h in heads]
    queries: list[list[str]] = [[] for _ in items]
    if question_first and rounds > 0:
        _search(registry, [(i, item.question) for i, item in enumerate(items)], texts, queries)
    finals: list[Trajectory | None] = [None] * len(items)
    active = list(range(len(items)))
    while active:
        prompts = [heads[i] + list(tokenizer.encode(texts[i], add_special_tokens=False)) for i in active]
        out = answer_engine(max(len(p) for p in prompts)).rollout(params, prompts, env="none", seed=seed).trajectories
        asks = []
        for i, t in zip(active, out):
            found = first_need(t.response_text) if len(queries[i]) < rounds else None
            if found is None:
                finals[i] = t
            else:
                texts[i] += t.response_text[:found[0]]
                asks.append((i, found[1]))
        if asks:
            prompts = [prompt_ids(tokenizer, [Message("user", query_prompt(items[i].question, need))]) for i, need in asks]
            written = query_engine.rollout(params, prompts, env="none", seed=seed).trajectories
            _search(registry, [(i, first_line(w.response_text, need)) for w, (i, need) in zip(written, asks)],
                    texts, queries)
        active = [i for i, _ in asks]
    return [WorkflowResult(tuple(q), text, t) for q, text, t in zip(queries, texts, finals)]


def _search(registry: ToolRegistry, asks: list[tuple[int, str]], texts: list[str], queries: list[list[str]]) -> None:
    """Runs the searches of (item, query) pairs as one batch; writes each call into its item's text."""
    results = registry.run([Action(SEARCH_SPEC.name, q, 0, len(q), True) for _, q in asks])
    for (i, q), result in zip(asks, results):
        texts[i] += call_text(q, result.text)
        queries[i].append(q)
