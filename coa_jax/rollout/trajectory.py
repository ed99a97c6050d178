"""Trajectories: token ids exactly as sampled or appended, with per-token provenance.

Provenance labels (`coa_jax.data.provenance.Provenance`) are written by the host loop at the
moment it writes the tokens: PROMPT, POLICY (thinking and actions), ANSWER (model tokens after
`</think>`), OBSERVATION (tool output and the budget observations the host appends),
SIM_OBSERVATION (observation text the policy wrote itself, simulated environment), FORCED (the
answer trigger). `logprobs` holds the sampler's log-prob on every sampled token (POLICY, ANSWER,
SIM_OBSERVATION) and 0 elsewhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from coa_jax.data.provenance import Provenance

SAMPLED = (Provenance.POLICY, Provenance.ANSWER, Provenance.SIM_OBSERVATION)
FINISH_REASONS = ("answered", "length")
FORCE_REASONS = ("", "actions", "tokens")


@dataclasses.dataclass(frozen=True)
class ToolCall:
    """One action of a trajectory.

    Attributes:
      tool / query: the action type and its parameter text.
      ok: the tool answered (False: the failure observation was appended).
      limited: the action budget was spent: no call was made, the limit observation was appended.
      simulated: the policy wrote the observation itself (simulated environment).
      latency_s: the tool's own time for the batch this call was in.
      wait_s: from the call's submission to its observation being ready on the host.
      error: why the call failed (the tool's `ToolResult.error`); None when it did not.
    """

    tool: str
    query: str
    ok: bool = True
    limited: bool = False
    simulated: bool = False
    latency_s: float = 0.0
    wait_s: float = 0.0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready record; `error` only when there is one."""
        record = dataclasses.asdict(self)
        if record["error"] is None:
            del record["error"]
        return record


@dataclasses.dataclass(frozen=True)
class Trajectory:
    """One finished rollout of one prompt.

    Attributes:
      index: position in the rollout's output (prompt_index * G + sample).
      prompt_index / sample: which prompt, which of its G samples.
      token_ids / labels / logprobs: [L] arrays over prompt + response.
      prompt_len: number of prompt tokens (labels[:prompt_len] are PROMPT).
      num_actions: tool calls answered by a tool (real) or written out by the policy (simulated);
        budget-limited calls are not counted.
      tool_calls: every action in order, limited ones included.
      finish: "answered" (ended with eos) or "length" (token budget spent).
      forced: "" or why an answer was forced ("actions" or "tokens").
      response_text: the decoded response without a final eos, for rewards and inspection.
      eos_ids: the ids that end a trajectory (for the checker).
      wall_s: seconds from the prompt's prefill to the end.
    """

    index: int
    prompt_index: int
    sample: int
    token_ids: np.ndarray
    labels: np.ndarray
    logprobs: np.ndarray
    prompt_len: int
    num_actions: int
    tool_calls: tuple[ToolCall, ...]
    finish: str
    forced: str
    response_text: str
    eos_ids: tuple[int, ...] = ()
    wall_s: float = 0.0

    @property
    def response_ids(self) -> np.ndarray:
        return self.token_ids[self.prompt_len:]

    @property
    def response_labels(self) -> np.ndarray:
        return self.labels[self.prompt_len:]

    @property
    def sampled_mask(self) -> np.ndarray:
        """True on tokens the sampler produced (they carry log-probs)."""
        return np.isin(self.labels, [int(p) for p in SAMPLED])

    def count(self, label: Provenance) -> int:
        return int(np.sum(self.labels == int(label)))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready record (ids, labels and log-probs included)."""
        return {
            "index": self.index, "prompt_index": self.prompt_index, "sample": self.sample,
            "prompt_len": self.prompt_len, "num_actions": self.num_actions, "finish": self.finish,
            "forced": self.forced, "wall_s": round(self.wall_s, 4), "response_text": self.response_text,
            "tool_calls": [c.to_json() for c in self.tool_calls],
            "token_ids": self.token_ids.tolist(), "labels": self.labels.tolist(),
            "logprobs": [round(float(x), 6) for x in self.logprobs],
        }  # fmt: skip


@dataclasses.dataclass(frozen=True)
class TrajectoryBatch:
    """Trajectories right-padded into arrays for the trainer.

    Attributes:
      tokens_BxL / labels_BxL / logprobs_BxL: ids, provenance (PAD after the end), sampler log-probs.
      positions_BxL: 0.. per row (0 on padding).
      segment_ids_BxL: 1 on real tokens, 0 on padding.
      prompt_lens_B / lengths_B: prompt length and total length per row.
    """

    tokens_BxL: np.ndarray
    labels_BxL: np.ndarray
    logprobs_BxL: np.ndarray
    positions_BxL: np.ndarray
    segment_ids_BxL: np.ndarray
    prompt_lens_B: np.ndarray
    lengths_B: np.ndarray


def pack_trajectories(trajectories: Sequence[Trajectory], length: int | None = None, pad_id: int = 0) -> TrajectoryBatch:
    """Right-pad trajectories to `length` (default: the longest).

    Raises:
      ValueError: a trajectory longer than `length`.
    """
    longest = max(len(t.token_ids) for t in trajectories)
    length = longest if length is None else length
    if longest > length:
        raise ValueError(f"a trajectory has {longest} tokens, more than length={length}")
    b = len(trajectories)
    tokens = np.full((b, length), pad_id, np.int32)
    labels = np.full((b, length), int(Provenance.PAD), np.int8)
    logprobs = np.zeros((b, length), np.float32)
    positions = np.zeros((b, length), np.int32)
    segments = np.zeros((b, length), np.int32)
    for i, t in enumerate(trajectories):
        n = len(t.token_ids)
        tokens[i, :n], labels[i, :n], logprobs[i, :n] = t.token_ids, t.labels, t.logprobs
        positions[i, :n] = np.arange(n)
        segments[i, :n] = 1
    return TrajectoryBatch(tokens, labels, logprobs, positions, segments,
                           np.asarray([t.prompt_len for t in trajectories], np.int32),
                           np.asarray([len(t.token_ids) for t in trajectories], np.int32))
