"""The text of the ReAct-style workflow baseline (SPEC 3), shared by the controller that runs it
(`coa_jax.rollout.workflow`) and the teacher that writes the base model's reading data.

Two texts:
  query prompt  a user turn asking for one search query, listing the searches made so far;
  prefix        what the controller writes into the assistant turn before the model continues:
                `<think>` then every call and its observation, in the trajectory format.
"""

from __future__ import annotations

from collections.abc import Sequence

from coa_jax.env.tags import SEARCH_SPEC

QUERY_INSTRUCTION = (
    "You help answer a question with a search engine. Write one short search query for the next fact "
    "that is needed, or none if the results found so far answer the question. Reply with the query only, "
    "on one line.\n\nQuestion: {question}\n{notes}"
)
NO_QUERY = "none"  # the reply that ends the controller's searches (asked only after its first search)
NOTE_CHARS = 300  # how much of each earlier observation the query prompt repeats


def query_prompt(question: str, done: Sequence[tuple[str, str]]) -> str:
    """The user turn for the next query, given (query, observation) pairs already searched."""
    notes = "".join(f"Already searched: {q}\nFound: {obs.strip()[:NOTE_CHARS]}\n" for q, obs in done)
    return QUERY_INSTRUCTION.format(question=question, notes=notes)


def is_no_query(reply: str) -> bool:
    """Whether a query reply (its first line, `first_line`) says no further search is needed."""
    return reply.strip().rstrip(".").lower() == NO_QUERY


def controller_prefix(done: Sequence[tuple[str, str]], think_open: str = "<think>\n") -> str:
    """The assistant-turn text the controller writes: `think_open`, then each call and its
    observation exactly as the search tool rendered it."""
    return think_open + "".join(f"{SEARCH_SPEC.open_tag} {q} {SEARCH_SPEC.close_tag}{obs}" for q, obs in done)


def first_line(text: str, fallback: str) -> str:
    """The query in a model's reply: its first non-empty line without tags (at most 200 chars)."""
    for tag in (SEARCH_SPEC.open_tag, SEARCH_SPEC.close_tag, "<think>", "</think>"):
        text = text.replace(tag, " ")
    for line in text.splitlines():
        if line.strip():
            return " ".join(line.split())[:200]
    return fallback
