"""The text of the ReAct-style workflow baseline (SPEC 3), shared by the controller that runs it
(`coa_jax.rollout.workflow`) and the teacher that writes the base model's skill data.

The controller acts on the model's own reasoning: a line that states a missing fact (a *need*:
"I need the founder of X." or, after a search that did not give it, "No result gives the founder
of X.") is where it searches. Two texts:
  query prompt  a user turn asking for one search query that finds a need (the ReAct action's
                argument, written by the model);
  call          what the controller writes into the assistant turn after the need line: the call
                and its observation, in the trajectory format (`<begin_search> q </end_search>` +
                `<search_result> ... </search_result>`).
"""

from __future__ import annotations

from coa_jax.env.tags import SEARCH_SPEC

QUERY_INSTRUCTION = (
    "You help answer a question with a search engine. Write one short search query that finds what is "
    "needed. Reply with the query only, on one line.\n\nQuestion: {question}\nNeeded: {need}\n"
)
NEED_PREFIXES = ("I need ", "No result gives ")  # the lines that state a missing fact


def query_prompt(question: str, need: str) -> str:
    """The user turn asking for the query that finds `need` ("the founder of X")."""
    return QUERY_INSTRUCTION.format(question=question, need=need)


def need_of(line: str) -> str | None:
    """The fact a reasoning line asks for ("the founder of X"), or None when it states no need."""
    line = line.strip()
    for prefix in NEED_PREFIXES:
        if line.startswith(prefix):
            need = line[len(prefix):].rstrip(".").strip()
            return need or None
    return None


def first_need(text: str) -> tuple[int, str] | None:
    """The first need stated in freshly generated reasoning: (end of its line, need), or None when
    the reasoning closes its thinking, or ends, before a whole need line."""
    close = text.find("</think>")
    pos = 0
    for line in (text if close < 0 else text[:close]).splitlines(keepends=True):
        pos += len(line)
        need = need_of(line) if line.endswith("\n") else None
        if need:
            return pos, need
    return None


def call_text(query: str, observation: str) -> str:
    """A call and its observation exactly as the search tool rendered it."""
    return f"{SEARCH_SPEC.open_tag} {query} {SEARCH_SPEC.close_tag}{observation}"


def first_line(text: str, fallback: str) -> str:
    """The query in a model's reply: its first non-empty line without tags (at most 200 chars)."""
    for tag in (SEARCH_SPEC.open_tag, SEARCH_SPEC.close_tag, "<think>", "</think>"):
        text = text.replace(tag, " ")
    for line in text.splitlines():
        if line.strip():
            return " ".join(line.split())[:200]
    return fallback
