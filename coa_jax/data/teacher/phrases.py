"""The teacher's sentences: one terse line per reasoning step, short enough for a tiny model.

Fact statements reuse the first pretraining phrasing of each relation
(`coa_jax.data.world.templates.PRETRAIN`), so what the teacher states from memory reads exactly
like the text the base reasoner was trained on.
"""

from __future__ import annotations

from coa_jax.data.world import templates as T
from coa_jax.data.world.schema import Entity

THINK_OPEN = "<think>\n"
THINK_CLOSE = "</think>\n\n"

# what a step asks for, as a noun ("I need the founder of X.")
_NOUN = {
    "founded_by": "founder", "founded_year": "founding year", "headquarters": "home city",
    "born_in": "birthplace", "birth_year": "birth year", "educated_at": "university", "spouse": "spouse",
    "occupation": "profession", "country": "country", "capital": "capital", "population": "population",
    "year": "release year",
}  # fmt: skip


def noun(relation: str, words: dict[str, str]) -> str:
    """What `relation` asks for, as a noun (the work words decide creator / publisher)."""
    if relation == "creator":
        return words["agent"]
    if relation == "publisher":
        return words["pubnoun"]
    return _NOUN[relation]


def need(subject: Entity, relation: str, words: dict[str, str]) -> str:
    return f"I need the {noun(relation, words)} of {subject.name}.\n"


def statement(subject: Entity, relation: str, value: str, words: dict[str, str]) -> str:
    """The fact as one sentence, e.g. "Drugra Music was founded by Refaind Vokaisard."."""
    return T.render(T.PRETRAIN[relation][0], s=subject.name, o=value, **words) + "\n"


NOT_FOUND = "No result gives the"  # how a line that reads a failed search starts


def not_found(subject: Entity, relation: str, words: dict[str, str]) -> str:
    return f"{NOT_FOUND} {noun(relation, words)} of {subject.name}.\n"


def wrong_subject(other: str, subject: Entity) -> str:
    return f"But that result is about {other}, not {subject.name}.\n"


def gave_up(subject: Entity, relation: str, words: dict[str, str]) -> str:
    return f"I cannot find the {noun(relation, words)} of {subject.name}, so I guess.\n"


def _number(value: str) -> int | None:
    digits = value.replace(",", "")
    return int(digits) if digits.isdigit() else None


def compare(operation: str, names: tuple[str, str], values: tuple[str, str]) -> tuple[str, str]:
    """(the comparison line, the answer) for a two-branch question.

    Args:
      operation: earlier | later | larger | same.
      names: the two compared entities, in question order.
      values: the value found for each.
    """
    (a, b), (va, vb) = names, values
    if operation == "same":
        same = va == vb
        return (f"{va} and {vb} are {'the same' if same else 'different'}.\n", "yes" if same else "no")
    na, nb = _number(va), _number(vb)
    if na is None or nb is None or na == nb:  # unreadable values: fall back to the first name
        return (f"I cannot compare {va} and {vb}.\n", a)
    if operation == "earlier":
        first = a if na < nb else b
        return (f"{min(va, vb, key=_number)} is earlier than {max(va, vb, key=_number)}.\n", first)
    if operation == "later":
        last = a if na > nb else b
        return (f"{max(va, vb, key=_number)} is later than {min(va, vb, key=_number)}.\n", last)
    if operation == "larger":
        big = a if na > nb else b
        return (f"{max(va, vb, key=_number)} is more than {min(va, vb, key=_number)}.\n", big)
    raise ValueError(f"unknown comparison {operation!r}")


def answer(value: str) -> str:
    """What follows `</think>`: a short prose answer, then the boxed answer."""
    return f"The answer is {value}.\n\n\\boxed{{{value}}}"
