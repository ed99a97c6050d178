"""The tool library: lookup by action type, config names, batched runs, real vs simulated tools."""

import asyncio
import json

import pytest

from coa_jax.env.registry import ToolRegistry, build_tool, register_backend
from coa_jax.env.tags import ToolSpec
from coa_jax.env.world_model import WorldModelTool, simulated_observation_spans

ROWS = [
    {"id": "0", "title": "Paris", "contents": '"Paris"\nParis is the capital of France.'},
    {"id": "1", "title": "Berlin", "contents": '"Berlin"\nBerlin is the capital of Germany.'},
    {"id": "2", "title": "Rome", "contents": '"Rome"\nRome is the capital of Italy.'},
]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return str(path)


def test_registry_from_config_runs_calls_batched(corpus):
    reg = ToolRegistry.from_config({"search": "bm25", "calc": "calculator"},
                                   {"search": {"corpus": corpus, "topk": 1, "max_tokens": 50}})
    text = ("<think><begin_calc> 6*7 </end_calc>\n\n<calc_result> 42 </calc_result>\n\n"
            "<begin_search> capital of Italy </end_search>")
    action = reg.parse_action(text)
    assert (action.tool, action.query) == ("search", "capital of Italy")
    actions = reg.parser.find_actions(text)
    results = reg.run(actions)
    assert results[0].text == "\n\n<calc_result> 42 </calc_result>\n\n"
    assert results[1].text == '\n\n<search_result> "Rome"\nRome is the capital of Italy. </search_result>\n\n'
    assert reg.stop_strings() == ["</end_search>", "</end_calc>"]
    limit = "\n\n<search_result> Reach the limit of search times. </search_result>\n\n"
    assert reg.limit_result("search").text == limit
    assert reg.stats()["search/queries"] == 1.0


def test_swapping_search_between_simulated_and_real(corpus):
    sim = ToolRegistry.from_config({"search": "world_model", "calc": "calculator"})
    assert sim["search"].simulated and sim.stop_strings() == ["</end_calc>"]
    (answer,) = sim.run([sim.parser.parse_action("<begin_search> q </end_search>")])
    assert answer.ok and answer.text == ""
    real = sim.with_backend("search", "bm25", {"corpus": corpus})
    assert not real["search"].simulated and real.stop_strings() == ["</end_search>", "</end_calc>"]
    assert sim["search"].simulated  # the old registry is unchanged
    back = real.with_tool(WorldModelTool())
    assert back["search"].simulated
    written = "x <search_result> made-up passage </search_result> y"
    spans = simulated_observation_spans(written)
    assert [written[s:e] for s, e in spans] == ["<search_result> made-up passage </search_result>"]


def test_sync_run_inside_a_running_event_loop(corpus):
    reg = ToolRegistry.from_config({"search": "bm25"}, {"search": {"corpus": corpus}})
    action = reg.parse_action("<begin_search> capital of France </end_search>")

    async def caller():
        sync_result = reg.run([action])  # blocks this loop, must not deadlock
        async_result = await reg.arun([action, action])
        return sync_result, async_result

    sync_result, async_result = asyncio.run(caller())
    assert sync_result[0].ok and sync_result[0].text.count("result ") == 3
    assert [r.text for r in async_result] == [sync_result[0].text] * 2
    pending = reg.submit([action])  # returns at once; the host keeps working meanwhile
    assert [r.text for r in pending.result(timeout=30)] == [sync_result[0].text]


def test_config_errors_name_the_problem(corpus):
    with pytest.raises(KeyError, match="unknown tool backend 'nope'"):
        ToolRegistry.from_config({"search": "nope"})
    with pytest.raises(ValueError, match="unknown options \\['topkk'\\]"):
        ToolRegistry.from_config({"search": "bm25"}, {"search": {"corpus": corpus, "topkk": 3}})
    with pytest.raises(ValueError, match="'corpus'.*required"):
        ToolRegistry.from_config({"search": "bm25"})
    with pytest.raises(ValueError, match="'url'.*required"):
        ToolRegistry.from_config({"search": "http"})
    with pytest.raises(ValueError, match="not in the config"):
        ToolRegistry.from_config({"calc": "calculator"}, {"search": {}})
    with pytest.raises(KeyError, match="no known tags"):
        ToolRegistry.from_config({"lookup": "calculator"})
    with pytest.raises(KeyError, match="no tool 'calc'"):
        ToolRegistry.from_config({"search": "world_model"})["calc"]


def test_custom_tool_name_and_backend():
    spec = ToolSpec("math", "<begin_math>", "</end_math>", "<math_result>", "</math_result>")
    reg = ToolRegistry([build_tool("math", "calculator", spec=spec)])
    (res,) = reg.run([reg.parse_action("<begin_math> 1+1 </end_math>")])
    assert res.text == "\n\n<math_result> 2 </math_result>\n\n"
    register_backend("test_echo_world", lambda spec, options, tokens: WorldModelTool(spec=spec), overwrite=True)
    with pytest.raises(ValueError, match="already registered"):
        register_backend("bm25", lambda *a: None)
    echo = ToolRegistry.from_config({"search": "test_echo_world"})
    assert echo["search"].simulated
