"""Fuzzing: the action parser, the answer extraction, the rewards and the calculator never raise
(the calculator only with CalcError) on arbitrary text."""

from hypothesis import given, settings, strategies as st

from coa_jax.env.answer_norm import extract_answer, extract_boxed, normalize_answer
from coa_jax.env.calculator import CalcError, evaluate
from coa_jax.env.rewards import get_reward, reference_reward
from coa_jax.env.tags import CALC_SPEC, SEARCH_SPEC, ActionParser, find_result_spans

PIECES = ["<think>", "</think>", "<begin_search>", "</end_search>", "<search_result>", "</search_result>",
          "<begin_calc>", "</end_calc>", "<calc_result>", "</calc_result>", "\\boxed{", "{", "}", "\\text{",
          "The answer is ", "So, ", ".", " ", "\n", "<ans_split>", "yes", "three", "the"]
tagged_text = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=8)), max_size=40).map("".join)
PARSER = ActionParser([SEARCH_SPEC, CALC_SPEC])
FAST = settings(max_examples=200, deadline=None)


@FAST
@given(tagged_text)
def test_parser_never_raises_and_offsets_are_consistent(text):
    for include in (False, True):
        for a in PARSER.find_actions(text, include_unclosed=include):
            assert 0 <= a.start < a.end <= len(text)
            assert text.startswith(SEARCH_SPEC.open_tag if a.tool == "search" else CALC_SPEC.open_tag, a.start)
    action = PARSER.parse_action(text)
    assert action is None or not text[action.end:].strip()
    for start, end, _ in find_result_spans(text, [SEARCH_SPEC, CALC_SPEC]):
        assert 0 <= start < end <= len(text)


@FAST
@given(tagged_text, st.one_of(tagged_text, st.lists(tagged_text, max_size=3)))
def test_rewards_never_raise(solution, gold):
    for name in ("autocoa", "em", "f1"):
        assert 0.0 <= get_reward(name)(solution, gold) <= 1.0
    extract_answer(solution)
    extract_boxed(solution)
    normalize_answer(solution)


@FAST
@given(st.text(max_size=300))
def test_reward_on_plain_unicode(text):
    assert reference_reward(text, text) in (0.0, 1.0)


arithmetic = st.lists(st.sampled_from(list("0123456789+-*/%()^. e,")), max_size=60).map("".join)


@FAST
@given(st.one_of(st.text(max_size=60), arithmetic))
def test_calculator_only_raises_calc_error(expr):
    try:
        evaluate(expr)
    except CalcError:
        pass
