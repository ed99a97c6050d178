"""Host-side record of one trajectory in progress: its tokens, labels and budget counters.

The record is the only writer of a trajectory's ids, labels and log-probs: sampled tokens arrive
from the decode loop with their log-probs, appended tokens (observations, forced triggers) arrive
from the host loop with their label, and the label is fixed right then.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from coa_jax.data.provenance import Provenance
from coa_jax.env.tags import Action
from coa_jax.rollout.sampler import ACTION, HALT
from coa_jax.rollout.stops import StopSet, TextCodec
from coa_jax.rollout.trajectory import ToolCall, Trajectory

DECODING, WAITING, DONE = "decoding", "waiting", "done"


@dataclasses.dataclass(frozen=True)
class Job:
    """One trajectory to generate: prompt `prompt_index`, sample `sample` of G; its random
    stream is `stream` (default: its index)."""

    index: int
    prompt_index: int
    sample: int
    prompt_ids: tuple[int, ...]
    stream: int | None = None

    @property
    def seed(self) -> int:
        return self.index if self.stream is None else self.stream


@dataclasses.dataclass
class RowRecord:
    """Mutable state of a trajectory while it is generated (see module docstring)."""

    job: Job
    ids: list[int]
    labels: list[int]
    logprobs: list[float]
    started: float = dataclasses.field(default_factory=time.perf_counter)
    phase: str = DECODING
    actions: int = 0
    limited: int = 0
    forced: str = ""
    finish: str = ""
    thinking_done: bool = False
    sim_open: int | None = None
    calls: list[ToolCall] = dataclasses.field(default_factory=list)
    pending: Action | None = None

    @classmethod
    def start(cls, job: Job) -> "RowRecord":
        n = len(job.prompt_ids)
        return cls(job, list(job.prompt_ids), [int(Provenance.PROMPT)] * n, [0.0] * n)

    @property
    def prompt_len(self) -> int:
        return len(self.job.prompt_ids)

    @property
    def response_len(self) -> int:
        return len(self.ids) - self.prompt_len

    def response_text(self, codec: TextCodec, end: int | None = None) -> str:
        """The decoded response up to token index `end` (exclusive; default: all of it)."""
        return codec.decode(self.ids[self.prompt_len:end], skip_special_tokens=False)

    def add_sampled(self, tokens: np.ndarray, logprobs: np.ndarray, marks: np.ndarray, stops: StopSet,
                    codec: TextCodec, tags: dict[str, str]) -> list[int]:
        """Append sampled tokens and apply the marks reported with them.

        Args:
          tokens / logprobs / marks: this decode call's output for the row.
          stops: the stop set the marks index into.
          tags: stop name -> the tag text it stands for (to confirm a match on the decoded text).

        Returns:
          Indices (into `ids`) of tokens that end a confirmed non-halting ACTION match (simulated
          actions the policy wrote through).
        """
        written = []
        for tok, lp, mark in zip(tokens.tolist(), logprobs.tolist(), marks.tolist()):
            self.ids.append(int(tok))
            self.logprobs.append(float(lp))
            self.labels.append(int(Provenance.ANSWER if self.thinking_done else Provenance.POLICY))
            if mark < 0 or stops.kind(mark) == HALT:
                continue
            name, j = stops.name(mark), len(self.ids) - 1
            if not self.response_text(codec, j + 1).endswith(tags[name]):
                continue  # the ids matched outside a real tag
            if name == "think_close" and self.sim_open is None:
                self.thinking_done = True
            elif name.startswith("open:") and self.sim_open is None:
                self.sim_open = j - len(stops.entries[mark].ids) + 1
            elif name.startswith("close:") and self.sim_open is not None:
                self.close_simulated(j + 1)
            elif stops.kind(mark) == ACTION:
                written.append(j)
        return written

    def close_simulated(self, end: int) -> None:
        """Label the open simulated observation, up to token index `end`, as SIM_OBSERVATION."""
        start = max(self.sim_open, self.prompt_len)
        self.labels[start:end] = [int(Provenance.SIM_OBSERVATION)] * (end - start)
        self.sim_open = None

    def add_appended(self, ids: list[int], label: Provenance) -> None:
        """Append host-written tokens (observation or forced trigger)."""
        self.ids.extend(int(i) for i in ids)
        self.labels.extend([int(label)] * len(ids))
        self.logprobs.extend([0.0] * len(ids))

    def to_trajectory(self, codec: TextCodec, eos_ids: tuple[int, ...], end_time: float) -> Trajectory:
        """The finished trajectory (an unclosed simulated observation runs to the end)."""
        if self.sim_open is not None:
            self.close_simulated(len(self.ids))
        body = self.ids[self.prompt_len:]
        if body and body[-1] in eos_ids:
            body = body[:-1]
        return Trajectory(
            index=self.job.index, prompt_index=self.job.prompt_index, sample=self.job.sample,
            token_ids=np.asarray(self.ids, np.int32), labels=np.asarray(self.labels, np.int8),
            logprobs=np.asarray(self.logprobs, np.float32), prompt_len=self.prompt_len, num_actions=self.actions,
            tool_calls=tuple(self.calls), finish=self.finish, forced=self.forced,
            response_text=codec.decode(body, skip_special_tokens=False), eos_ids=eos_ids,
            wall_s=end_time - self.started)  # fmt: skip
