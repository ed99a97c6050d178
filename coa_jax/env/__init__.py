"""The environment an agent model acts in: tools, retrieval and rewards.

Host-side code only (no JAX). Modules, one concern each:

- `tags`: action/observation tag specs and the action parser (`<begin_search> ... </end_search>`).
- `observation`: rendering of observations (`<search_result> result 1: ... </search_result>`),
  with a token cap.
- `registry`: `Tool`, `ToolResult`, `ToolRegistry` (tools looked up by action type; built from
  config names; real and simulated tools behind one interface).
- `search_tool`: the search tool over any retrieval backend.
- `corpus`: FlashRAG-style `corpus.jsonl` loading (`Document`, `Hit`).
- `bm25`: in-process BM25 (bm25s) with an on-disk index cache.
- `server` / `client`: a FlashRAG-compatible HTTP retrieval server and its async client.
- `calculator`: a safe arithmetic tool (`<begin_calc> ... </end_calc>`).
- `world_model`: the simulated search tool of RL stage 1 (the policy writes the observation).
- `answer_norm`, `rewards`, `judge`: answer extraction/normalisation, the reference reward,
  EM/F1 and an LLM-judge hook, in a registry by name.
"""
