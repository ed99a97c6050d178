"""Rewards and answer metrics, registered by name.

Every entry has the signature `fn(solution: str, gold: str | Sequence[str]) -> float`, where
`solution` is the full response text and `gold` one answer, several answers joined by
`<ans_split>`, or a list of either. Built-in names:

- "autocoa": the reference reward of SPEC 2.3 (AutoCoA `reward_score/hotpotqa.py`):
  0 without `</think>` or with a search call after it; else 1 if the extracted answer equals a
  normalised gold, 0 if one contains the other as a substring, 1 if it holds at least 70% of the
  gold's distinct words, else 0; best over the golds.
- "em": SQuAD exact match of the last `\\boxed{}` answer; "f1": SQuAD token F1 of it.
- an LLM judge, once registered with `coa_jax.env.judge.register_llm_judge`.

Under the built-in rules a gold that normalises to nothing (e.g. "the", " ", ".") is skipped and an
answer that normalises to nothing scores 0, so "" never matches "".
"""

from __future__ import annotations

import collections
from typing import Callable, Sequence

from coa_jax.env.answer_norm import (THINK_CLOSE, extract_answer, extract_boxed, final_part, normalize_answer,
                                     squad_normalize)

Gold = str | Sequence[str]
RewardFn = Callable[[str, Gold], float]
ANS_SPLIT = "<ans_split>"
SEARCH_OPEN = "<begin_search>"


def split_golds(gold: Gold) -> list[str]:
    """The gold answers as a flat list (`<ans_split>`-joined strings split).

    Raises:
      TypeError: gold is neither a string nor a sequence of strings.
    """
    if isinstance(gold, str):
        items = [gold]
    elif isinstance(gold, Sequence) and all(isinstance(g, str) for g in gold):
        items = list(gold)
    else:
        raise TypeError(f"gold must be a string or a sequence of strings, got {type(gold).__name__}")
    return [part for item in items for part in item.split(ANS_SPLIT)]


def format_ok(solution: str, action_tags: Sequence[str] = (SEARCH_OPEN,)) -> bool:
    """The reference format gate: `</think>` present and no action tag after the last one."""
    if THINK_CLOSE not in solution:
        return False
    after = solution.split(THINK_CLOSE)[-1]
    return not any(tag in after for tag in action_tags)


def reference_score(solution: str, gold: str, *, action_tags: Sequence[str] = (SEARCH_OPEN,)) -> float:
    """The reference reward against one gold answer (0.0 or 1.0)."""
    if not solution or not gold or not format_ok(solution, action_tags):
        return 0.0
    answer = extract_answer(solution, "flexible")
    if answer is None:
        return 0.0
    target = normalize_answer(gold)
    if not answer or not target:  # "" would equal "" (and be contained in everything)
        return 0.0
    if answer == target:
        return 1.0
    if target in answer or answer in target:  # the reference scores partial containment 0
        return 0.0
    target_words = set(target.split())
    common = target_words & set(answer.split())
    return 1.0 if len(common) >= 0.7 * len(target_words) else 0.0


def reference_reward(solution: str, gold: Gold, *, action_tags: Sequence[str] = (SEARCH_OPEN,)) -> float:
    """The reference reward: 1.0 if any gold answer scores 1, else 0.0."""
    if not isinstance(solution, str):
        raise TypeError(f"solution must be a string, got {type(solution).__name__}")
    return max((reference_score(solution, g, action_tags=action_tags) for g in split_golds(gold)), default=0.0)


def boxed_prediction(solution: str) -> str:
    """The raw last `\\boxed{}` answer after `</think>` ("" when there is none)."""
    return extract_boxed(final_part(solution)) or ""


def exact_match(prediction: str, gold: Gold) -> float:
    """1.0 if the SQuAD-normalised prediction equals a SQuAD-normalised gold answer."""
    pred = squad_normalize(prediction)
    return float(bool(pred) and any(pred == squad_normalize(g) for g in split_golds(gold)))


def token_f1(prediction: str, gold: Gold) -> float:
    """Best SQuAD token F1 over the gold answers (HotpotQA rule: yes/no/noanswer must match exactly)."""
    pred = squad_normalize(prediction)
    best = 0.0
    for g in split_golds(gold):
        target = squad_normalize(g)
        if not pred or not target:
            continue
        if (pred in ("yes", "no", "noanswer") or target in ("yes", "no", "noanswer")) and pred != target:
            continue
        common = collections.Counter(pred.split()) & collections.Counter(target.split())
        same = sum(common.values())
        if same == 0:
            continue
        precision, recall = same / len(pred.split()), same / len(target.split())
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


def em_reward(solution: str, gold: Gold) -> float:
    return exact_match(boxed_prediction(solution), gold)


def f1_reward(solution: str, gold: Gold) -> float:
    return token_f1(boxed_prediction(solution), gold)


_REWARDS: dict[str, RewardFn] = {"autocoa": reference_reward, "em": em_reward, "f1": f1_reward}


def register_reward(name: str, fn: RewardFn, *, overwrite: bool = False) -> None:
    """Adds `fn` under `name`.

    Raises:
      ValueError: the name is taken and overwrite is False.
    """
    if name in _REWARDS and not overwrite:
        raise ValueError(f"reward {name!r} is already registered")
    _REWARDS[name] = fn


def get_reward(name: str) -> RewardFn:
    """The reward registered as `name`.

    Raises:
      KeyError: naming the registered rewards.
    """
    if name not in _REWARDS:
        raise KeyError(f"unknown reward {name!r}; registered: {sorted(_REWARDS)}")
    return _REWARDS[name]


def reward_names() -> list[str]:
    return sorted(_REWARDS)
