"""The world's prompt: an instruction shaped like the reference's, then the question.

Like the reference prompt it explains the search format (`<begin_search> query </end_search>`,
results in `<search_result> ... </search_result>`), asks to search only while thinking, and asks
for the answer in `\\boxed{}`; the question follows a final `Question:` line, which
`coa_jax.data.formats.extract_question` recognises.
"""

from __future__ import annotations

from coa_jax.data.formats.messages import Message
from coa_jax.data.formats.verl_parquet import QAPrompt
from coa_jax.data.world.schema import Question

DATA_SOURCE = "coa_world"

INSTRUCTION = """You are a careful reasoning assistant. You can look facts up with a search tool. Follow these rules:

1. **When to search:**
   - If you are not sure of a fact, search for it instead of guessing.
   - You may search several times, one fact at a time.
   - Search only while thinking, inside <think> </think>, never in the final answer.

2. **How to search:**
   - Write the query exactly like this:
     ```
     <begin_search> your query here </end_search>
     ```
   - The results come back like this:
     ```
     <search_result> ... </search_result>
     ```

3. **How to answer:**
   - Use the results to finish your reasoning.
   - Give the final answer in the format \\boxed{YOUR_ANSWER}.

Question:
"""


def user_prompt(question: str) -> str:
    """The full user message for `question`."""
    return f"{INSTRUCTION}{question}\n"


def to_qa_prompt(q: Question, index: int) -> QAPrompt:
    """A world question as a verl prompt row (`source_file` names its benchmark, like the
    reference evaluation file)."""
    return QAPrompt(
        data_source=DATA_SOURCE,
        prompt=(Message("user", user_prompt(q.question)),),
        golds=q.golds,
        index=index,
        split=q.split,
        extra={
            "id": q.id,
            "source_file": f"{q.dataset}_{q.split}.json",
            "type": q.type,
            "hops": q.hops,
            "tier": q.tier,
        },
    )
