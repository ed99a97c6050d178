"""The reference reward, EM/F1, the reward registry and the LLM-judge hook."""

import json

import pytest

from coa_jax.env.answer_norm import extract_answer, extract_boxed, normalize_answer
from coa_jax.env.rewards import (exact_match, get_reward, reference_reward, register_reward, reward_names,
                                 split_golds, token_f1)


def response(final: str, thinking: str = "Let me think.") -> str:
    return f"<think>\n{thinking}\n</think>\n\n{final}"


@pytest.mark.parametrize("final, gold, expected", [
    ("They are.\n\n\\boxed{Yes}", "yes", 1.0),                       # yes/no, case
    ("\\boxed{yes}", "no", 0.0),
    ("\\boxed{three}", "3", 1.0),                                     # number words -> digits
    ("\\boxed{7}", "seven", 1.0),
    ("\\boxed{The Beatles}", "Beatles", 1.0),                         # articles
    ("\\boxed{“Hamlet”}", "Hamlet", 1.0),                             # typographic quotes
    ("\\boxed{Paris}", ["London", "Paris"], 1.0),                     # several golds, list
    ("\\boxed{Paris}", "London<ans_split>Paris", 1.0),                # several golds, joined
    ("\\boxed{Paris}", ["London<ans_split>Rome", "Berlin"], 0.0),
    ("\\boxed{\\text{New York City}}", "New York City", 1.0),         # nested braces
    ("\\boxed{{Paris}}", "Paris", 1.0),
    ("\\boxed{Rome} then \\boxed{Paris}", "Paris", 1.0),              # the last box counts
    ("\\boxed{Paris, France}", "Paris", 0.0),                         # containment scores 0 (reference)
    ("\\boxed{Obama Barack Hussein}", "Barack Hussein Obama", 1.0),   # >= 70% of the gold's words
    ("\\boxed{states america united kingdom}", "the United States of America", 1.0),
    ("\\boxed{Barack Obama Jr}", "Barack Hussein Obama", 0.0),        # 2 of 3 words < 70%
    ("The answer is Paris. Done", "Paris", 1.0),                      # phrase fallback
    ("Paris.", "Paris", 1.0),                                         # last-sentence fallback
    ("I think it is Paris. ", "Paris", 0.0),                          # ... whose containment is 0
    ("So, well, basically Paris.", "Paris", 1.0),                     # fillers
    ("", "Paris", 0.0),
])
def test_reference_reward_cases(final, gold, expected):
    assert reference_reward(response(final), gold) == expected


def test_format_gate():
    assert reference_reward("\\boxed{Paris}", "Paris") == 0.0  # no </think>
    late_search = response("<begin_search> capital of France </end_search>\n\\boxed{Paris}")
    assert reference_reward(late_search, "Paris") == 0.0
    early_search = ("<think><begin_search> capital of France </end_search>\n\n<search_result> result 1: Paris "
                    "</search_result>\n\n</think>\n\n\\boxed{Paris}")
    assert reference_reward(early_search, "Paris") == 1.0
    assert reference_reward(response("\\boxed{Paris}"), "") == 0.0
    assert reference_reward(response("\\boxed{Paris}"), []) == 0.0
    with pytest.raises(TypeError, match="gold"):
        reference_reward(response("x"), 3)


def test_normalisation_and_extraction():
    assert normalize_answer("  The  Answer: (Three) 'Kings' ") == "answer 3 kings"
    assert normalize_answer(None) == ""
    assert extract_boxed("\\boxed{a{b}c} and \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert extract_boxed("\\boxed{a} \\boxed{unclosed") == "a"
    assert extract_boxed("no box") is None
    assert extract_answer("</think> \\boxed{x}", "strict") == "x"
    assert extract_answer("</think> Paris.", "strict") is None
    assert extract_answer("<think>\\boxed{inside}</think>", "flexible") is None  # only after </think>
    with pytest.raises(ValueError, match="method"):
        extract_answer("x", "loose")
    assert split_golds(["a<ans_split>b", "c"]) == ["a", "b", "c"]


def test_exact_match_and_f1():
    assert exact_match("The Beatles!", "beatles") == 1.0
    assert exact_match("three", "3") == 0.0  # SQuAD normalisation has no number words
    assert token_f1("Barack Obama", "Barack Hussein Obama") == pytest.approx(0.8)
    assert token_f1("yes", "no") == 0.0 and token_f1("no", "no") == 1.0
    assert token_f1("yes indeed", "yes") == 0.0  # HotpotQA rule for yes/no
    assert get_reward("em")(response("\\boxed{The Beatles}"), ["Beatles"]) == 1.0
    assert get_reward("f1")(response("\\boxed{Barack Obama}"), "Barack Hussein Obama") == pytest.approx(0.8)
    assert get_reward("em")(response("no box"), "x") == 0.0


def test_reward_registry():
    assert {"autocoa", "em", "f1"} <= set(reward_names())
    assert get_reward("autocoa") is reference_reward
    with pytest.raises(KeyError, match="registered"):
        get_reward("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_reward("em", lambda s, g: 0.0)


def test_llm_judge_callable_hook():
    from coa_jax.env.judge import judge_reward, majority, parse_verdict, register_llm_judge

    seen = []

    def judge(prediction, golds):
        seen.append((prediction, golds))
        return prediction == "NYC"

    register_llm_judge(judge, "test_judge", overwrite=True)
    reward = get_reward("test_judge")
    assert reward(response("\\boxed{NYC}"), "New York<ans_split>New York City") == 1.0
    assert seen == [("NYC", ["New York", "New York City"])]
    assert judge_reward(judge)(response("no box"), "x") == 0.0  # no answer: the judge is not asked
    assert parse_verdict("... \\boxed{Correct}") is True
    assert parse_verdict("\\boxed{\\text{incorrect}}") is False
    assert parse_verdict("undecided") is None
    assert majority([True, None, True]) and not majority([True, None, False])


def test_chat_completions_judge_reads_key_from_env(monkeypatch):
    from aiohttp import web

    from coa_jax.env.judge import ChatCompletionsJudge
    from coa_jax.env.server import serve_app_in_thread

    requests = []

    async def chat(request):
        requests.append((request.headers.get("Authorization"), await request.json()))
        replies = ["Same city. \\boxed{Correct}", "\\boxed{Correct}", "\\boxed{Incorrect}"]
        return web.json_response({"choices": [{"message": {"content": r}} for r in replies]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    with serve_app_in_thread(app) as url:
        judge = ChatCompletionsJudge(base_url=url + "/v1", model="judge-model", api_key_env="COA_TEST_JUDGE_KEY")
        monkeypatch.delenv("COA_TEST_JUDGE_KEY", raising=False)
        with pytest.raises(RuntimeError, match="COA_TEST_JUDGE_KEY"):
            judge("NYC", ["New York City"])
        monkeypatch.setenv("COA_TEST_JUDGE_KEY", "sk-secret-value")
        assert judge("NYC", ["New York City"]) is True
    auth, body = requests[0]
    assert auth == "Bearer sk-secret-value"
    assert body["model"] == "judge-model" and body["n"] == 3 and "NYC" in body["messages"][0]["content"]
    assert "sk-secret-value" not in repr(judge) and "sk-secret-value" not in json.dumps(body)
