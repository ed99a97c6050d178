"""Action parsing and observation rendering."""

import pytest

from coa_jax.env.observation import ObservationFormat, TokenCounter, whitespace_truncate
from coa_jax.env.tags import CALC_SPEC, SEARCH_SPEC, ActionParser, ToolSpec, find_result_spans

PARSER = ActionParser([SEARCH_SPEC, CALC_SPEC])


def test_parses_search_call_at_end_of_text():
    text = "<think>\nI need the capital.\n<begin_search>  capital of France </end_search>"
    action = PARSER.parse_action(text)
    assert action is not None and action.closed
    assert (action.tool, action.query) == ("search", "capital of France")
    assert text[action.start:action.end] == "<begin_search>  capital of France </end_search>"
    assert PARSER.parse_action(text + "\n\n") == action  # trailing whitespace is fine
    assert PARSER.parse_action(text + " and more") is None  # the call does not end the text


def test_finds_calls_of_several_tools_in_order():
    text = ("<think><begin_search>a</end_search>\n\n<search_result> result 1: x </search_result>\n\n"
            "<begin_calc> 2 * 3 </end_calc>\n\n<calc_result> 6 </calc_result> <begin_search>b</end_search>")
    found = [(a.tool, a.query) for a in PARSER.find_actions(text)]
    assert found == [("search", "a"), ("calc", "2 * 3"), ("search", "b")]


def test_unclosed_call_only_on_request():
    text = "<think> <begin_search> half a quer"
    assert PARSER.find_actions(text) == []
    (action,) = PARSER.find_actions(text, include_unclosed=True)
    assert (action.query, action.closed, action.end) == ("half a quer", False, len(text))


def test_calls_after_think_end_are_not_actions():
    text = "<think> ok </think>\n\nAnswer <begin_search> late </end_search>"
    assert PARSER.find_actions(text) == []
    assert PARSER.parse_action(text) is None
    anywhere = ActionParser([SEARCH_SPEC], think_close=None)
    assert anywhere.parse_action(text).query == "late"


def test_calls_inside_observations_are_skipped():
    text = ("<search_result> result 1: <begin_search> fake </end_search> </search_result> "
            "<begin_search> real </end_search>")
    assert [a.query for a in PARSER.find_actions(text)] == ["real"]
    assert PARSER.find_actions("<search_result> <begin_search> x </end_search>") == []  # unclosed observation


def test_reopened_call_restarts_at_the_later_tag():
    assert PARSER.parse_action("<begin_search> a <begin_search> b </end_search>").query == "b"
    assert PARSER.parse_action("<begin_search> a <begin_calc> 1+1 </end_calc>").tool == "calc"


def test_stray_close_tag_is_not_an_action():
    assert PARSER.parse_action("no call here </end_search>") is None


def test_result_spans_cover_tags():
    text = "x <search_result> a </search_result> y <calc_result> 2 </calc_result> z <search_result> open"
    spans = find_result_spans(text, [SEARCH_SPEC, CALC_SPEC])
    assert [text[s:e] for s, e, _ in spans] == ["<search_result> a </search_result>", "<calc_result> 2 </calc_result>",
                                                "<search_result> open"]
    assert [name for _, _, name in spans] == ["search", "calc", "search"]


def test_spec_and_parser_validation():
    with pytest.raises(ValueError, match="non-empty"):
        ToolSpec("x", "", "b", "c", "d")
    with pytest.raises(ValueError, match="must differ"):
        ToolSpec("x", "a", "a", "c", "d")
    with pytest.raises(ValueError, match="duplicate tool names"):
        ActionParser([SEARCH_SPEC, SEARCH_SPEC])
    clash = ToolSpec("other", "<begin_search>", "</x>", "<y>", "</y>")
    with pytest.raises(ValueError, match="share tags"):
        ActionParser([SEARCH_SPEC, clash])
    with pytest.raises(TypeError):
        PARSER.find_actions(None)


# --- observations: the reference rollout's exact bytes -------------------------------------

def test_search_observation_matches_reference_bytes():
    fmt = ObservationFormat()
    docs = ['"Paris"\nParis is the capital of France.', '"Lyon"\nLyon is a city.']
    assert fmt.documents(docs) == ('\n\n<search_result> result 1: "Paris"\nParis is the capital of France.\n'
                                   'result 2: "Lyon"\nLyon is a city. </search_result>\n\n')
    bare = '\n\n<search_result> "Paris"\nParis is the capital of France. </search_result>\n\n'
    assert fmt.documents(docs[:1], numbered=False) == bare
    assert fmt.failure() == "\n\n<search_result> Retrieval failed. </search_result>\n\n"
    assert fmt.limit() == "\n\n<search_result> Reach the limit of search times. </search_result>\n\n"


def test_observation_token_cap_keeps_tags():
    fmt = ObservationFormat(max_tokens=6)  # "result 1: one two three\nresult" is six words
    out = fmt.documents(["one two three", "four five six"])
    assert out == "\n\n<search_result> result 1: one two three\nresult </search_result>\n\n"
    assert fmt.failure() == "\n\n<search_result> Retrieval failed. </search_result>\n\n"  # never cut
    assert whitespace_truncate("a  b\nc", 2) == "a  b"
    with pytest.raises(ValueError, match="max_tokens"):
        ObservationFormat(max_tokens=0)


def test_observation_cap_with_a_tokenizer():
    class CharTokenizer:  # one token per character
        def encode(self, text, add_special_tokens=False):
            return [ord(c) for c in text]

        def decode(self, ids):
            return "".join(chr(i) for i in ids)

    fmt = ObservationFormat(max_tokens=12, tokens=TokenCounter.from_tokenizer(CharTokenizer()))
    assert fmt.documents(["abcdefghij"]) == "\n\n<search_result> result 1: ab </search_result>\n\n"
    calc = ObservationFormat.for_spec(CALC_SPEC)
    assert calc.text("6") == "\n\n<calc_result> 6 </calc_result>\n\n"
