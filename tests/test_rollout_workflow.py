"""The workflow controller: it searches where the model's reasoning states a need, with a query the
model writes for that need, at most K times per question; a question whose reasoning closes
without a need is done."""

from __future__ import annotations

import types

from test_data_teacher_fixtures import world_hf_tokenizer

from coa_jax.data.formats.messages import Message
from coa_jax.data.formats.workflow import first_need, need_of
from coa_jax.env.registry import ToolResult
from coa_jax.rollout.eval_data import EvalItem
from coa_jax.rollout.workflow import run_workflow

QUESTIONS = ("where was Alpha born", "who founded Beta Records and where was the founder born", "is Gamma old")
ANSWER = "</think>\n\nThe answer is x.\n\n\\boxed{x}"
# what the model writes next, per question, given how many searches its context holds so far
SCRIPT = {
    QUESTIONS[0]: ["I need the birthplace of Alpha.\nAlpha was born in", "Alpha was born in Z.\n" + ANSWER],
    QUESTIONS[1]: ["I need the founder of Beta Records.\nguess", "Beta Records was founded by Delta.\nI need the "
                   "birthplace of Delta.\n", "No result gives the birthplace of Delta.\nmore", "I need the x of y.\n"],
    QUESTIONS[2]: ["Gamma is old.\n" + ANSWER + "\nI need the age of Gamma.\n"],  # a need after </think>: done
}


class Reasoner:
    """Continues each prompt from SCRIPT (the number of calls in its context picks the line; the last
    line past the end)."""

    def __init__(self, tokenizer):
        self.tokenizer, self.calls = tokenizer, []

    def rollout(self, params, prompts, *, env, seed):
        out = []
        for ids in prompts:
            text = self.tokenizer.decode(ids)
            question = next(q for q in QUESTIONS if q in text)
            done = text.count("<begin_search>")
            self.calls.append((question, done))
            out.append(types.SimpleNamespace(response_text=SCRIPT[question][min(done, len(SCRIPT[question]) - 1)]))
        return types.SimpleNamespace(trajectories=out)


class QueryWriter:
    """Writes "<need> query" for the need in each query prompt."""

    def __init__(self, tokenizer):
        self.tokenizer, self.needs = tokenizer, []

    def rollout(self, params, prompts, *, env, seed):
        needs = [self.tokenizer.decode(ids).split("Needed: ", 1)[1].split("\n", 1)[0] for ids in prompts]
        self.needs += needs
        return types.SimpleNamespace(trajectories=[types.SimpleNamespace(response_text=f"{n} query\nrest")
                                                   for n in needs])


class CountingRegistry:
    def __init__(self):
        self.queries = []

    def run(self, actions):
        self.queries += [a.query for a in actions]
        return [ToolResult(f"\n\n<search_result> about {a.query} </search_result>\n\n", ok=True) for a in actions]


def _run(rounds, question_first=False):
    tok = world_hf_tokenizer()
    reasoner, writer, registry = Reasoner(tok), QueryWriter(tok), CountingRegistry()
    items = [EvalItem(f"q{i}", "nq", (Message("user", q),), q, ("x",)) for i, q in enumerate(QUESTIONS)]
    results = run_workflow(writer, lambda longest: reasoner, None, tok, registry, items, rounds=rounds,
                           question_first=question_first)
    return results, reasoner, writer, registry


def test_the_controller_searches_each_stated_need_until_the_reasoning_closes_or_k_searches():
    results, reasoner, writer, registry = _run(rounds=3)
    assert [r.queries for r in results] == [
        ("the birthplace of Alpha query",),
        ("the founder of Beta Records query", "the birthplace of Delta query", "the birthplace of Delta query"),
        (),
    ]
    # searches batched per round, in item order
    assert registry.queries == ["the birthplace of Alpha query", "the founder of Beta Records query",
                                "the birthplace of Delta query", "the birthplace of Delta query"]
    assert writer.needs == ["the birthplace of Alpha", "the founder of Beta Records", "the birthplace of Delta",
                            "the birthplace of Delta"]
    # the context is the reasoning cut right after each need line, then the call and its results
    beta = results[1]
    assert beta.prefix.startswith("<think>\nI need the founder of Beta Records.\n<begin_search> the founder of Beta "
                                  "Records query </end_search>\n\n<search_result> about")
    assert "guess" not in beta.prefix and "more" not in beta.prefix
    assert "Beta Records was founded by Delta.\nI need the birthplace of Delta.\n<begin_search>" in beta.prefix
    # K = 3 searches spent: its fourth need is not searched, that generation is the final one
    assert beta.trajectory.response_text == "I need the x of y.\n"
    assert results[0].response_text.endswith(ANSWER) and results[2].prefix == "<think>\n"
    assert reasoner.calls.count((QUESTIONS[2], 0)) == 1  # closed without a need: asked once


def test_rag_searches_the_question_first_and_then_only_reads():
    results, _, writer, registry = _run(rounds=1, question_first=True)
    assert registry.queries == list(QUESTIONS) and not writer.needs
    assert [r.queries for r in results] == [(q,) for q in QUESTIONS]
    assert results[0].prefix.startswith("<think>\n<begin_search> where was Alpha born </end_search>")


def test_need_lines():
    assert need_of("I need the founder of X.") == "the founder of X"
    assert need_of("  No result gives the birthplace of Y.\n") == "the birthplace of Y"
    assert need_of("X was founded by Y.") is None and need_of("I need .") is None
    assert first_need("X is old.\nI need the age of X.\nmore") == (len("X is old.\nI need the age of X.\n"),
                                                                   "the age of X")
    assert first_need("I need the age of X.") is None  # an unfinished line is no need yet
    assert first_need("done\n</think>\nI need the age of X.\n") is None
