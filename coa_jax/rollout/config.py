"""Rollout settings: budgets of Algorithm 1, batch shape, sampling, environment mode."""

from __future__ import annotations

import dataclasses

from coa_jax.rollout.sampling import SamplingParams

ENVS = ("real", "simulated", "none")


@dataclasses.dataclass(frozen=True)
class RolloutConfig:
    """How agent trajectories are generated (SPEC Algorithm 1).

    Attributes:
      batch_slots: rows decoded together (the compiled batch); more trajectories than slots are
        queued and start as soon as a slot frees up. Must divide over the mesh's batch axes.
      max_prompt_tokens: longest prompt; longer prompts are an error.
      max_response_tokens: N, the budget of every token after the prompt (policy, observations,
        forced answer).
      max_actions: T, tool calls per trajectory. The next call gets the limit observation, the one
        after that forces the answer.
      answer_reserve: tokens of N kept for a forced answer (trigger included).
      answer_trigger: appended to force an answer while the model is still thinking.
      answer_trigger_after_think: appended instead when `</think>` was already written.
      env: "real" (tools run), "simulated" (the policy writes observations itself), "none" (no
        tools; actions are plain text).
      temperature / top_p / top_k: sampling (temperature 0 is greedy).
      segment_steps: most tokens per row one decode call generates. A row whose tool answers
        during a call rejoins at the next one, so shorter segments mean less idling per action.
      halts_per_segment: a decode call returns once this many rows halted (0: 1), so tool calls
        start at once while the other rows keep decoding.
      tool_grace_s: after submitting tool calls, wait this long for them before the next segment,
        so rows with fast tools (in-process BM25, a local server) do not sit out a whole segment.
      overlap_tools: keep decoding other rows while tools run (False: every row waits for every
        outstanding tool batch, as a synchronous loop would; for comparisons).
      tool_timeout_s: how long the host waits for one batch of tool calls before it fails them.
      seed: base of every row's random stream (row stream = (seed, trajectory index)).
    """

    batch_slots: int = 8
    max_prompt_tokens: int = 512
    max_response_tokens: int = 1024
    max_actions: int = 10
    answer_reserve: int = 48
    answer_trigger: str = "\n</think>\n\n\\boxed{"
    answer_trigger_after_think: str = "\n\n\\boxed{"
    env: str = "real"
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    segment_steps: int = 16
    halts_per_segment: int = 0
    tool_grace_s: float = 0.02
    overlap_tools: bool = True
    tool_timeout_s: float = 120.0
    seed: int = 0

    @property
    def sampling(self) -> SamplingParams:
        return SamplingParams(self.temperature, self.top_p, self.top_k)

    @property
    def cache_len(self) -> int:
        return self.max_prompt_tokens + self.max_response_tokens

    @property
    def exit_after_halts(self) -> int:
        return self.halts_per_segment or 1

    def errors(self) -> list[tuple[str, str]]:
        out = []
        for name in ("batch_slots", "max_prompt_tokens", "max_response_tokens", "segment_steps"):
            if getattr(self, name) <= 0:
                out.append((name, f"must be > 0, got {getattr(self, name)}"))
        if self.max_actions < 0:
            out.append(("max_actions", f"must be >= 0, got {self.max_actions}"))
        if self.answer_reserve < 2:
            out.append(("answer_reserve", f"must be >= 2 (trigger and one answer token), got {self.answer_reserve}"))
        elif self.answer_reserve >= self.max_response_tokens:
            out.append(("answer_reserve", f"must be < max_response_tokens={self.max_response_tokens}, "
                                          f"got {self.answer_reserve}"))
        if not self.answer_trigger:
            out.append(("answer_trigger", "must not be empty"))
        if self.env not in ENVS:
            out.append(("env", f"must be one of {ENVS}, got {self.env!r}"))
        if self.temperature < 0:
            out.append(("temperature", f"must be >= 0, got {self.temperature}"))
        if not 0 < self.top_p <= 1:
            out.append(("top_p", f"must be in (0, 1], got {self.top_p}"))
        if self.top_k < 0:
            out.append(("top_k", f"must be >= 0, got {self.top_k}"))
        if not 0 <= self.halts_per_segment <= self.batch_slots:
            out.append(("halts_per_segment", f"must be in [0, batch_slots={self.batch_slots}], "
                                             f"got {self.halts_per_segment}"))
        if self.tool_grace_s < 0:
            out.append(("tool_grace_s", f"must be >= 0, got {self.tool_grace_s}"))
        if self.tool_timeout_s <= 0:
            out.append(("tool_timeout_s", f"must be > 0, got {self.tool_timeout_s}"))
        return out
