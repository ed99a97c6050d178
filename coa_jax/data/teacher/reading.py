"""How the teacher reads search results: the rendered observation back into passages, and a
passage's sentences into (relation, value) statements.

The teacher sees only what the model would see: the observation text the search tool rendered
(`<search_result> result 1: "Title"\\nText\\nresult 2: ... </search_result>`). It splits that
text into passages, and finds a relation's value in a passage by matching the corpus's sentence
shapes (`coa_jax.data.world.templates.PASSAGE`) with the value left open. It never looks at the
question record's gold values.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import string

from coa_jax.data.world import templates as T
from coa_jax.env.corpus import title_of
from coa_jax.env.observation import ObservationFormat

# relation -> (PASSAGE template key, placeholder holding the value) pairs that state it
READ_FROM = {
    "occupation": (("occupation", "o"),),
    "birth_year": (("birth", "year"), ("birth_year", "o")),
    "born_in": (("birth", "city"), ("born_in", "o")),
    "educated_at": (("educated_at", "o"),),
    "spouse": (("spouse", "o"),),
    "founded_by": (("org_intro", "founder"), ("founder", "o")),
    "founded_year": (("org_intro", "year"), ("founding_year", "o")),
    "headquarters": (("headquarters", "o"),),
    "creator": (("work_intro", "creator"), ("work_creator", "o")),
    "year": (("work_intro", "year"), ("work_year", "o")),
    "publisher": (("publisher", "o"),),
    "country": (("city_intro", "o"), ("city_country", "o")),
    "population": (("population", "o"),),
    "capital": (("capital", "o"),),
}
_YEAR_RELATIONS = frozenset({"birth_year", "founded_year", "year"})
_RESULT_SPLIT = re.compile(r"(?:^|\n)result \d+: ")


@dataclasses.dataclass(frozen=True)
class ReadPassage:
    """One search result as the teacher reads it: its title line and its text."""

    title: str
    text: str


def _vocabulary(key: str) -> str:
    words = {w[key] for w in T.WORK_WORDS.values()} if key != "orgword" else set(T.ORG_WORDS.values())
    return "(?:" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + ")"


_PLACEHOLDERS = {"be": "(?:is|was)", "year": r"\d{4}"}
_PLACEHOLDERS.update({k: _vocabulary(k) for k in (*T.WORK_WORDS["novel"], "orgword")})
_OCCUPATIONS = "(?:" + "|".join(sorted({*T.CREATIVE_OCCUPATION.values(), *T.OTHER_OCCUPATIONS})) + ")"
_NAME = r"[A-Z][^.]*?"  # names start with a capital and hold no full stop


def _placeholder(field: str, relation: str, wanted: bool) -> str:
    if field in _PLACEHOLDERS:
        return _PLACEHOLDERS[field]
    if wanted and relation == "population":
        return r"[\d,]+"
    if wanted and relation in _YEAR_RELATIONS:
        return _PLACEHOLDERS["year"]
    if wanted and relation == "occupation":  # professions, not "is a country" / "is a university"
        return _OCCUPATIONS
    return _NAME


def _compile(template: str, relation: str, wanted: str) -> re.Pattern[str]:
    parts = []
    for literal, field, _, _ in string.Formatter().parse(template):
        # "a" turns into "an" before a vowel sound when rendered (templates.render)
        parts.append(re.sub(r"(?<![A-Za-z])([Aa])\\ ", r"\1n?\\ ", re.escape(literal)))
        if field is None:
            continue
        pattern = _placeholder(field, relation, field == wanted)
        parts.append(f"(?P<value>{pattern})" if field == wanted else pattern)
    # a statement starts a sentence: at the start of the text or after ". "
    return re.compile(r"(?:^|(?<=\. ))" + "".join(parts))


@functools.lru_cache(maxsize=None)
def statement_patterns(relation: str) -> tuple[re.Pattern[str], ...]:
    """Regexes that find `relation`'s value (group `value`) in passage text."""
    if relation not in READ_FROM:
        raise KeyError(f"no passage sentence states relation {relation!r}")
    return tuple(_compile(template, relation, wanted)
                 for key, wanted in READ_FROM[relation] for template in T.PASSAGE[key])  # fmt: skip


def read_value(passage: ReadPassage, relation: str) -> str | None:
    """The value of `relation` the passage states about its own subject, or None."""
    for pattern in statement_patterns(relation):
        m = pattern.search(passage.text)
        if m is not None:
            return m.group("value").strip()
    return None


def split_contents(contents: str) -> ReadPassage:
    """A corpus `contents` string ('"Title"\\nText') as a ReadPassage."""
    head, _, text = contents.partition("\n")
    return ReadPassage(title_of(head), text)


def read_observation(observation: str, fmt: ObservationFormat = ObservationFormat()) -> list[ReadPassage]:
    """The passages listed in a rendered search observation, best first ([] for a failure/limit).

    Args:
      observation: the exact text the search tool appended (lead, tags, body, trail).
      fmt: the observation format it was rendered with.
    """
    start = observation.find(fmt.open_tag)
    end = observation.rfind(fmt.close_tag)
    if start < 0 or end < 0:
        return []
    body = observation[start + len(fmt.open_tag) + 1 : end - 1]
    if body in (fmt.failure_text, fmt.limit_text):
        return []
    chunks = _RESULT_SPLIT.split(body)
    if chunks and chunks[0] == "":  # numbered results: the split leaves an empty head
        chunks = chunks[1:]
    return [split_contents(c) for c in chunks if c]
