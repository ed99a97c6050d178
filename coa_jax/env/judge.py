"""LLM-judge hook: "LLM accuracy" (a judge model says whether prediction and gold mean the same).

A judge is any callable `(prediction, golds) -> bool`; `register_llm_judge` turns it into a
reward entry. `ChatCompletionsJudge` asks an OpenAI-compatible `/chat/completions` endpoint,
samples `n` verdicts and takes the majority (as the reference evaluation does with n=3). The API
key is read from an environment variable at call time; it is never stored, logged or printed, and
it goes only to `base_url`: redirects are refused (urllib would follow them with the
Authorization header) and a base URL carrying credentials is rejected.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import urllib.parse
import urllib.request
from typing import Callable, Sequence

from coa_jax.env.rewards import Gold, RewardFn, boxed_prediction, register_reward, split_golds

Judge = Callable[[str, list[str]], bool]

JUDGE_PROMPT = """You grade a predicted answer against a list of acceptable gold answers.

Gold answers: <{golds}>
Predicted answer: <{prediction}>

The prediction is correct if it states the same fact as at least one gold answer: an identical
answer, a rewording, a synonym or a small grammatical variation all count. It is incorrect if it
leaves out key information, adds wrong details, or means something else.

End your reply with \\boxed{{Correct}} or \\boxed{{Incorrect}}."""

_VERDICT = re.compile(r"\\boxed\{\s*(?:\\text\{)?\s*(Correct|Incorrect)\s*\}?\s*\}", re.IGNORECASE)


def parse_verdict(reply: str) -> bool | None:
    """True/False from the last `\\boxed{Correct|Incorrect}` in a judge reply; None if absent."""
    found = _VERDICT.findall(reply or "")
    return None if not found else found[-1].lower() == "correct"


def majority(verdicts: Sequence[bool | None]) -> bool:
    """Correct only if more verdicts say correct than say incorrect or say nothing."""
    correct = sum(v is True for v in verdicts)
    return correct > len(verdicts) - correct


def judge_reward(judge: Judge) -> RewardFn:
    """A reward: 1.0 when `judge(last boxed answer, golds)` says correct."""

    def reward(solution: str, gold: Gold) -> float:
        prediction = boxed_prediction(solution)
        return 1.0 if prediction and judge(prediction, split_golds(gold)) else 0.0

    return reward


def register_llm_judge(judge: Judge, name: str = "llm_judge", *, overwrite: bool = False) -> None:
    """Registers `judge_reward(judge)` as reward `name`."""
    register_reward(name, judge_reward(judge), overwrite=overwrite)


@dataclasses.dataclass(frozen=True)
class ChatCompletionsJudge:
    """A judge served by an OpenAI-compatible chat endpoint (vLLM, SGLang, a hosted API).

    Attributes:
      base_url: e.g. "http://127.0.0.1:8000/v1" (requests go to base_url + "/chat/completions").
      model: the model name the endpoint expects.
      api_key_env: the environment variable holding the API key (None: send no key).
      n: verdicts sampled per question (majority vote).
      temperature, max_tokens, timeout_s: request settings.
    """

    base_url: str
    model: str
    api_key_env: str | None = "COA_JUDGE_API_KEY"
    n: int = 3
    temperature: float = 0.7
    max_tokens: int = 1024
    timeout_s: float = 60.0

    def __post_init__(self):
        url = urllib.parse.urlsplit(self.base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"base_url must be an http(s) URL, got {self.base_url!r}")
        if url.username is not None or url.password is not None:
            raise ValueError("base_url must not carry credentials; put the key in the environment variable "
                             f"named by api_key_env ({self.api_key_env})")
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.api_key_env is not None:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise RuntimeError(f"the judge's API key variable {self.api_key_env} is not set")
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def replies(self, prediction: str, golds: list[str]) -> list[str]:
        """The judge model's raw replies.

        Raises:
          RuntimeError: missing API key variable; urllib.error.URLError: the endpoint failed or
            answered with a redirect (never followed).
        """
        prompt = JUDGE_PROMPT.format(golds=golds, prediction=prediction)
        body = {"model": self.model, "messages": [{"role": "user", "content": prompt}], "n": self.n,
                "temperature": self.temperature, "max_tokens": self.max_tokens}
        request = urllib.request.Request(self.base_url.rstrip("/") + "/chat/completions",
                                         data=json.dumps(body).encode(), headers=self._headers(), method="POST")
        with _OPENER.open(request, timeout=self.timeout_s) as resp:
            data = json.loads(resp.read())
        return [choice["message"]["content"] or "" for choice in data.get("choices", [])]

    def __call__(self, prediction: str, golds: list[str]) -> bool:
        replies = self.replies(prediction, golds)
        return majority([parse_verdict(r) for r in replies]) if replies else False


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A 3xx answer becomes an HTTPError instead of a request (with the key) to another address."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_RefuseRedirects)
