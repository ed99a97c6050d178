"""The world's prompt: an instruction, then the question.

Two instruction styles, chosen by name with `instruction(style)`:
- "reference": shaped like the reference's (`INSTRUCTION`), a few hundred tokens;
- "compact": the same rules in a few dozen tokens (`COMPACT_INSTRUCTION`), for tiny models on CPU.
Both explain the search format (`<begin_search> query </end_search>`, results in
`<search_result> ... </search_result>`), ask to search only while thinking, and ask for the
answer in `\\boxed{}`; the question follows a final `Question:` line, which
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


# The same rules in a few dozen tokens (the reference-shaped instruction takes a few hundred),
# ending with the same "Question:" line.
COMPACT_INSTRUCTION = (
    "Think inside <think> </think>. If unsure of a fact, search while thinking: "
    "<begin_search> query </end_search>; results come in <search_result> </search_result>. "
    "Answer as \\boxed{ANSWER}.\n\nQuestion:\n"
)
INSTRUCTIONS = {"reference": INSTRUCTION, "compact": COMPACT_INSTRUCTION}


def instruction(style: str = "reference") -> str:
    """The instruction text of `style` ("reference" or "compact").

    Raises:
      ValueError: an unknown style.
    """
    if style not in INSTRUCTIONS:
        raise ValueError(f"unknown instruction style {style!r}; known: {sorted(INSTRUCTIONS)}")
    return INSTRUCTIONS[style]


def user_prompt(question: str, style: str = "reference") -> str:
    """The full user message for `question`."""
    return f"{instruction(style)}{question}\n"


def to_qa_prompt(q: Question, index: int, style: str = "reference") -> QAPrompt:
    """A world question as a verl prompt row (`source_file` names its benchmark, like the
    reference evaluation file)."""
    return QAPrompt(
        data_source=DATA_SOURCE,
        prompt=(Message("user", user_prompt(q.question, style)),),
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
