"""The workflow controller: at most K searches per question, the first always made, and a `none`
reply from the model ends that question's searches (its later rounds ask nothing, search nothing)."""

from __future__ import annotations

import types

from test_data_teacher_fixtures import world_hf_tokenizer

from coa_jax.data.formats.messages import Message
from coa_jax.data.formats.workflow import NO_QUERY, is_no_query
from coa_jax.env.registry import ToolResult
from coa_jax.rollout.eval_data import EvalItem
from coa_jax.rollout.workflow import run_workflow

QUESTIONS = ("where was Alpha born", "where was Beta born", "where was Gamma born")


class ScriptedModel:
    """Answers each query prompt from a script keyed by (question, searches listed so far)."""

    def __init__(self, tokenizer, script):
        self.tokenizer, self.script, self.asked = tokenizer, script, []

    def rollout(self, params, prompts, *, env, seed):
        out = []
        for ids in prompts:
            text = self.tokenizer.decode(ids)
            question = next(q for q in QUESTIONS if f"Question: {q}\n" in text)
            done = text.count("Already searched:")
            self.asked.append((question, done))
            out.append(types.SimpleNamespace(response_text=self.script[question][done] + "\n"))
        return types.SimpleNamespace(trajectories=out)


class Answers:
    def rollout(self, params, prompts, *, env, seed):
        return types.SimpleNamespace(trajectories=[types.SimpleNamespace(response_text="answer") for _ in prompts])


class CountingRegistry:
    def __init__(self):
        self.queries = []

    def run(self, actions):
        self.queries += [a.query for a in actions]
        return [ToolResult(f"\n\n<search_result> about {a.query} </search_result>\n\n", ok=True) for a in actions]


def test_a_none_reply_ends_that_questions_searches_from_the_second_round():
    tok = world_hf_tokenizer()
    script = {  # round 1 "none" is not an ending: the controller always searches once (the question)
        QUESTIONS[0]: ["Alpha born", NO_QUERY, "never asked"],
        QUESTIONS[1]: [NO_QUERY, "Beta birthplace", "Beta city"],
        QUESTIONS[2]: ["Gamma born", "Gamma birthplace", NO_QUERY],
    }
    model, registry = ScriptedModel(tok, script), CountingRegistry()
    items = [EvalItem(f"q{i}", "nq", (Message("user", q),), q, ("x",)) for i, q in enumerate(QUESTIONS)]
    results = run_workflow(model, lambda longest: Answers(), None, tok, registry, items, rounds=3)

    assert [r.queries for r in results] == [("Alpha born",), (QUESTIONS[1], "Beta birthplace", "Beta city"),
                                            ("Gamma born", "Gamma birthplace")]
    assert registry.queries == ["Alpha born", QUESTIONS[1], "Gamma born", "Beta birthplace", "Gamma birthplace",
                                "Beta city"]
    assert (QUESTIONS[0], 2) not in model.asked  # stopped: its third round asked nothing
    for r in results:  # the prefix holds exactly the searches made, in order
        assert r.prefix.count("<begin_search>") == len(r.queries)
        assert all(f"<begin_search> {q} </end_search>" in r.prefix for q in r.queries)


def test_none_replies_are_recognised_loosely_but_not_inside_a_query():
    assert is_no_query("none") and is_no_query(" None. ") and is_no_query("NONE")
    assert not is_no_query("none of Alpha") and not is_no_query("Nonesuch Records founded")
