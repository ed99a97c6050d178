"""Invented names that sound real: syllable words, near-duplicates, and a uniqueness registry.

Names are built from a small syllable inventory so a small tokenizer covers them with a few
pieces each. Near-duplicates (a shared surname, one letter changed) are made on purpose as
retrieval distractors. The registry keeps every surface form (name or alias) unique *as a word
sequence*: no surface equals a contiguous run of words of another entity's surface, so finding a
name in text (word-boundary match) always means that entity.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence

_ONSETS = (
    "b", "br", "c", "d", "dr", "f", "g", "gr", "h", "k", "l", "m", "n", "p", "r", "s", "st", "t", "tr", "v", "z",
)  # fmt: skip
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "o", "ai", "ei")
_CODAS = ("", "", "", "n", "r", "l", "s", "m", "nd", "rn", "th")
_SURNAME_ENDS = ("", "", "en", "a", "ov", "is", "ard", "by", "ell")
_CITY_ENDS = ("", "", "ton", "ford", "mere", "wick", "dale", "holm", "haven")
_COUNTRY_ENDS = ("ia", "ar", "and", "onia", "eth", "ia")
_SINGLE_VOWELS = "aeiou"

WORD_RE = re.compile(r"\w+")
_AWKWARD = re.compile(r"(.)\1\1|[aeiou]{3}|aa|ee|ii|oo|uu")


def words(text: str) -> tuple[str, ...]:
    """Lower-cased word tokens (punctuation dropped): the unit of name matching."""
    return tuple(w.lower() for w in WORD_RE.findall(text))


def _syllable(rng: random.Random, coda: bool) -> str:
    return rng.choice(_ONSETS) + rng.choice(_VOWELS) + (rng.choice(_CODAS) if coda else "")


def _word(
    rng: random.Random, syllables: int, ends: Sequence[str] = ("",), min_len: int = 4, max_len: int = 9
) -> str:
    while True:
        parts = [_syllable(rng, coda=(i == syllables - 1)) for i in range(syllables)]
        text = "".join(parts) + rng.choice(ends)
        if min_len <= len(text) <= max_len and not _AWKWARD.search(text):
            return text.capitalize()


def first_name(rng: random.Random) -> str:
    return _word(rng, 2, min_len=4, max_len=7)


def surname(rng: random.Random) -> str:
    return _word(rng, 2, _SURNAME_ENDS, min_len=4, max_len=9)


def city_name(rng: random.Random) -> str:
    return _word(rng, 2, _CITY_ENDS, min_len=5, max_len=10)


def country_name(rng: random.Random) -> str:
    return _word(rng, 2, _COUNTRY_ENDS, min_len=5, max_len=10)


def plain_word(rng: random.Random) -> str:
    """A short invented word for organisation names."""
    return _word(rng, 2, min_len=4, max_len=7)


def one_letter_variant(rng: random.Random, name: str) -> str:
    """`name` with one vowel of its last word changed (Dovan -> Doven): a near-duplicate."""
    head, _, last = name.rpartition(" ")
    positions = [i for i, ch in enumerate(last) if ch.lower() in _SINGLE_VOWELS and i > 0]
    if not positions:
        return name
    i = rng.choice(positions)
    new = rng.choice([v for v in _SINGLE_VOWELS if v != last[i].lower()])
    last = last[:i] + new + last[i + 1 :]
    return f"{head} {last}" if head else last


class NameRegistry:
    """Accepts an entity's surfaces only if no word sequence clash with other entities arises.

    Clash: a new surface equals a contiguous word run of an existing surface, or vice versa.
    Reserved words (the vocabulary of the text templates) may not be single-word names.
    """

    def __init__(self, reserved_words: Iterable[str] = ()):
        self._reserved = {w.lower() for w in reserved_words}
        self._full: dict[tuple[str, ...], str] = {}  # surface words -> owner
        self._runs: dict[tuple[str, ...], set[str]] = {}  # every contiguous word run -> owners

    def _clashes(self, owner: str, surface: tuple[str, ...]) -> bool:
        if len(surface) == 1 and surface[0] in self._reserved:
            return True
        if self._runs.get(surface, set()) - {owner}:
            return True
        for run in _runs(surface):
            if self._full.get(run, owner) != owner:
                return True
        return False

    def try_add(self, owner: str, surfaces: Sequence[str]) -> bool:
        """Registers all of `surfaces` for `owner` and returns True, or changes nothing and
        returns False if any of them clashes."""
        keys = [words(s) for s in surfaces]
        if any(not k or self._clashes(owner, k) for k in keys):
            return False
        for key in keys:
            self._full[key] = owner
            for run in _runs(key):
                self._runs.setdefault(run, set()).add(owner)
        return True

    def reserved(self, word: str) -> bool:
        """Whether `word` belongs to the template vocabulary (and so may not be a name part)."""
        return word.lower() in self._reserved

    def owner_of(self, surface: str) -> str | None:
        return self._full.get(words(surface))


def _runs(key: tuple[str, ...]) -> list[tuple[str, ...]]:
    return [key[i:j] for i in range(len(key)) for j in range(i + 1, len(key) + 1)]
