"""Answer extraction and normalisation, as the AutoCoA reference reward does them.

Reference: AutoCoA `RL_training/verl/utils/reward_score/hotpotqa.py` (`normalize_answer`,
`extract_solution(method="flexible")`). One deliberate difference: `\\boxed{...}` is matched with
balanced braces and `\\text{...}`-style wrappers are unwrapped (the reference's `[^}]*` pattern cuts
`\\boxed{\\text{Paris}}` to `\\text{Paris`, which normalises to "textparis").
"""

from __future__ import annotations

import re
import string

_PUNCT = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
# straight quotes are already gone with the punctuation; typographic quotes and CJK brackets are not
_QUOTES_BRACKETS = re.compile(r"[\"'\u201c\u201d\u2018\u2019「」『』()\[\]{}]")
_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_NUMBER_RES = [(re.compile(rf"\b{w}\b"), str(d)) for d, w in enumerate(_NUMBER_WORDS)]
_FILLERS = re.compile(r"\b(well|so|basically|actually|literally|simply|just|um|uh)\b")
_ANSWER_PHRASE = re.compile(r"(The answer is|Therefore,|Thus,|So,|In conclusion,|Hence,)[:\s]+([^\.]+)", re.IGNORECASE)
_LATEX_WRAPPER = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_BOXED = "\\boxed{"
THINK_CLOSE = "</think>"


def normalize_answer(text: str | None) -> str:
    """The reference normalisation.

    In order: lower-case; drop ASCII punctuation; drop articles (a, an, the); drop quotes and
    brackets; number words zero..nine -> digits; drop filler words (well, so, basically,
    actually, literally, simply, just, um, uh); collapse whitespace.
    """
    if text is None:
        return ""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    text = _QUOTES_BRACKETS.sub("", text)
    for pattern, digit in _NUMBER_RES:
        text = pattern.sub(digit, text)
    text = _FILLERS.sub(" ", text)
    return " ".join(text.split())


def squad_normalize(text: str | None) -> str:
    """SQuAD's normalisation: lower-case, drop punctuation and articles, collapse whitespace."""
    if text is None:
        return ""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def unwrap_latex_text(text: str) -> str:
    """`\\text{Paris}` -> `Paris` (also textbf, textit, textrm, mathrm, mathbf, mbox), repeatedly."""
    while True:
        new = _LATEX_WRAPPER.sub(r"\1", text)
        if new == text:
            return text
        text = new


def extract_boxed(text: str) -> str | None:
    """The content of the last complete top-level `\\boxed{...}` (nested braces balanced), or None."""
    found = None
    pos = text.find(_BOXED)
    while pos >= 0:
        depth, i = 1, pos + len(_BOXED)
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth:  # never closed: nothing later can close at top level either
            break
        found = text[pos + len(_BOXED):i - 1]
        pos = text.find(_BOXED, i)
    return None if found is None else unwrap_latex_text(found)


def final_part(solution: str) -> str:
    """The text after the last `</think>` (the whole text without one), stripped."""
    return solution.strip().split(THINK_CLOSE)[-1].strip()


def extract_answer(solution: str, method: str = "flexible") -> str | None:
    """The normalised answer of a response, as the reference reward extracts it.

    Only the text after the last `</think>` is read. "strict": the last `\\boxed{}` or None.
    "flexible" (the reference reward's mode): the last `\\boxed{}`; else the first
    "The answer is / Therefore, / Thus, / So, / In conclusion, / Hence," phrase up to a period;
    else the second-to-last period-separated piece (the only one if there is no period).

    Raises:
      ValueError: unknown method.
    """
    if method not in ("strict", "flexible"):
        raise ValueError(f"method must be 'strict' or 'flexible', got {method!r}")
    text = final_part(solution)
    boxed = extract_boxed(text)
    if boxed is not None:
        return normalize_answer(boxed.strip())
    if method == "strict":
        return None
    phrase = _ANSWER_PHRASE.search(text)
    if phrase:
        return normalize_answer(phrase.group(2).strip())
    if text:
        pieces = text.split(".")
        return normalize_answer(pieces[-2].strip() if len(pieces) > 1 else pieces[-1].strip())
    return None
