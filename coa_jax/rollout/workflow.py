"""The ReAct-style workflow baseline: an external controller, not the model, decides to search.

Each of at most K rounds the controller asks the model, with a fixed query-writing prompt, for one
search query, runs the search and writes the call and its observation into the model's context in
the trajectory format (`<begin_search> q </end_search>` + `<search_result> ... </search_result>`).
From the second round on the model may reply `none` (the results so far answer the question), which
ends that question's searches, as a ReAct model's "finish" (in the first round the controller then
searches the question as written). Then the model continues from there with tools off and answers.
This is the baseline the paper's agent models beat: the script, not the model's own reasoning,
decides when a search happens.

With `question_first`, round 1 searches the question as written instead of asking the model: one
such round is retrieve-then-read (RAG), the diagnostic of whether a model reads its results.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from coa_jax.data.formats.messages import Message
from coa_jax.data.formats.workflow import controller_prefix, first_line, is_no_query, query_prompt
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
    prefix: str  # the text the controller wrote into the assistant turn
    trajectory: Trajectory  # the final generation (its prompt ends with the prefix)

    @property
    def response_text(self) -> str:
        return self.prefix + self.trajectory.response_text


def run_workflow(query_engine: RolloutEngine, answer_engine: Callable[[int], RolloutEngine], params: Params, tokenizer,
                 registry: ToolRegistry, items: Sequence[EvalItem], *, rounds: int, seed: int = 0,
                 think_open: str = "<think>", question_first: bool = False) -> list[WorkflowResult]:
    """Runs the workflow for every item (batched per round).

    Args:
      query_engine: generates the queries (env "none", a short budget).
      answer_engine: builds the engine of the final continuation (env "none") for a given longest
        prompt (known only once the controller's text is written).
      params: the model (in the engines' shardings).
      tokenizer: the model's tokenizer.
      registry: provides the "search" tool.
      items: the questions.
      rounds: K, the most searches per question (the first is always made).
      seed: sampling seed.
      think_open: opened in the assistant turn before the first call unless the chat template's
        generation prompt already ends with it.
      question_first: round 1 searches each question itself (no query is generated).
    """
    steps: list[list[tuple[str, str]]] = [[] for _ in items]
    active = list(range(len(items)))  # questions still searching
    for k in range(rounds):
        if k == 0 and question_first:
            queries = [items[i].question for i in active]
        else:
            prompts = [prompt_ids(tokenizer, [Message("user", query_prompt(items[i].question, steps[i]))])
                       for i in active]
            written = query_engine.rollout(params, prompts, env="none", seed=seed).trajectories
            queries = [first_line(t.response_text, items[i].question) for t, i in zip(written, active)]
        if k == 0:  # the first search is always made: "none" there searches the question itself
            queries = [items[i].question if is_no_query(q) else q for i, q in zip(active, queries)]
        else:  # from the second round on "none" ends the question's searches
            keep = [not is_no_query(q) for q in queries]
            active = [i for i, ok in zip(active, keep) if ok]
            queries = [q for q, ok in zip(queries, keep) if ok]
            if not active:
                break
        results = registry.run([Action(SEARCH_SPEC.name, q, 0, len(q), True) for q in queries])
        for i, q, result in zip(active, queries, results):
            steps[i].append((q, result.text))
    prompts, prefixes = [], []
    for item, done in zip(items, steps):
        head = prompt_ids(tokenizer, item.messages)
        opened = tokenizer.decode(head[-4:]).rstrip().endswith(think_open)
        prefix = controller_prefix(done, "" if opened else think_open + "\n")
        prompts.append(head + list(tokenizer.encode(prefix, add_special_tokens=False)))
        prefixes.append(prefix)
    finals = answer_engine(max(len(p) for p in prompts)).rollout(params, prompts, env="none", seed=seed).trajectories
    return [WorkflowResult(tuple(q for q, _ in done), prefix, t) for done, prefix, t in zip(steps, prefixes, finals)]
