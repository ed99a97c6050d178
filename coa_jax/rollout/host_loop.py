"""The host loop of one `RolloutEngine.rollout` call (see `engine` for the protocol).

Each iteration: write pending rows (one `control`, one `append`), run a decode segment over the
rows that are not waiting, read its tokens, decide per halted row (answer, action, budget), submit
the actions as one tool batch, and collect finished tool batches without blocking.
"""

from __future__ import annotations

import collections
import dataclasses
import time

import jax

from coa_jax.data.provenance import Provenance
from coa_jax.models.params import Params
from coa_jax.rollout.host_io import RowWrites, ToolGroup
from coa_jax.rollout.rows import DECODING, DONE, WAITING, Job, RowRecord
from coa_jax.rollout.sampler import ACTION, HALT
from coa_jax.rollout.trajectory import ToolCall, Trajectory

UNLIMITED = 1 << 30  # free actions of a row whose closing tags must never halt it


@dataclasses.dataclass(frozen=True)
class RolloutStats:
    """Counters of one `rollout` call."""

    wall_s: float
    trajectories: int
    sampled_tokens: int
    appended_tokens: int
    decode_calls: int
    tool_batches: int
    idle_wait_s: float  # host blocked on tools with no row left to decode

    @property
    def sampled_tokens_per_s(self) -> float:
        return self.sampled_tokens / max(self.wall_s, 1e-9)


@dataclasses.dataclass(frozen=True)
class RolloutResult:
    trajectories: list[Trajectory]  # in job order: prompt 0 samples 0..G-1, prompt 1, ...
    stats: RolloutStats


@dataclasses.dataclass(frozen=True)
class Budget:
    """T, N and the answer reserve of one call."""

    actions: int  # T
    tokens: int  # N
    reserve: int


class HostLoop:
    """Runs one `rollout` call; `engine` is the RolloutEngine (its sampler, codec, stops, registry)."""

    def __init__(self, engine, params: Params, jobs: list[Job], env: str, budget: Budget,
                 rng: jax.Array):
        self.e, self.cfg, self.params, self.env, self.rng = engine, engine.cfg, params, env, rng
        self.budget = budget
        self.queue = collections.deque(jobs)
        self.slots: list[RowRecord | None] = [None] * self.cfg.batch_slots
        self.done: dict[int, Trajectory] = {}
        self.groups: list[ToolGroup] = []
        self.writes = RowWrites(self.cfg.batch_slots, self.cfg.cache_len)
        self.counts = collections.Counter()
        self.idle_wait_s = 0.0
        self.tool_wait_ema: float | None = None  # typical wait for a tool batch, seconds
        self.n_jobs = len(jobs)

    def run(self) -> RolloutResult:
        start = time.perf_counter()
        sampler = self.e.sampler
        state = sampler.init_state()
        while len(self.done) < self.n_jobs:
            self._admit()
            self._collect_tools(block=False)
            ends = {slot: len(rec.ids) for slot, rec in enumerate(self.slots) if rec is not None}
            state, appended = self.writes.flush(sampler, self.params, state, ends)
            self.counts["appended"] += appended
            decoding = [len(r.ids) for r in self.slots if r is not None and r.phase == DECODING]
            if decoding:
                window = sampler.window(max(decoding) + self.cfg.segment_steps)
                state, out = sampler.decode(self.params, state, rng=self.rng, window=window)
                self.counts["decode_calls"] += 1
                submitted = self._process(out)
                grace = self.cfg.tool_grace_s
                if submitted is not None and (self.tool_wait_ema is None or self.tool_wait_ema < 2 * grace):
                    submitted.future_wait(grace)  # fast tools answer before the next segment starts
            elif self.groups:
                self._collect_tools(block=True)
            elif not self.writes.pending:
                raise RuntimeError(f"rollout stalled with {self.n_jobs - len(self.done)} trajectories unfinished")
            if not self.cfg.overlap_tools:
                while self.groups:
                    self._collect_tools(block=True)
        stats = RolloutStats(time.perf_counter() - start, self.n_jobs, self.counts["sampled"], self.counts["appended"],
                             self.counts["decode_calls"], self.counts["tool_batches"], self.idle_wait_s)
        return RolloutResult([self.done[k] for k in range(self.n_jobs)], stats)

    # --- rows entering and leaving -------------------------------------------------------------

    def _admit(self) -> None:
        for slot, rec in enumerate(self.slots):
            if rec is None and self.queue:
                job = self.queue.popleft()
                rec = self.slots[slot] = RowRecord.start(job)
                self.writes.append(slot, list(job.prompt_ids))
                self.writes.set(slot, active=True, limit=self._limit(rec), free=self._free(rec), reset=True,
                                seed=job.seed)

    def _finish(self, slot: int, rec: RowRecord, reason: str) -> None:
        rec.finish, rec.phase = reason, DONE
        self.done[rec.job.index] = rec.to_trajectory(self.e.codec, self.e.eos_ids, time.perf_counter())
        if self.slots[slot] is rec:
            self.slots[slot] = None

    def _limit(self, rec: RowRecord) -> int:
        n = self.budget.tokens
        return rec.prompt_len + (n if rec.forced else n - self.budget.reserve)

    def _free(self, rec: RowRecord) -> int:
        if rec.forced or self.env == "none":
            return UNLIMITED
        if self.env == "simulated" and not rec.limited:
            return max(self.budget.actions - rec.actions, 0)
        return 0

    def _fits(self, rec: RowRecord, n: int) -> bool:
        return rec.response_len + n <= self.budget.tokens - self.budget.reserve

    def _resume(self, slot: int, rec: RowRecord) -> None:
        rec.phase = DECODING
        self.writes.set(slot, active=True, limit=self._limit(rec), free=self._free(rec))

    def _append(self, slot: int, rec: RowRecord, ids: list[int], label: Provenance) -> None:
        rec.add_appended(ids, label)
        self.writes.append(slot, ids)

    def _force(self, slot: int, rec: RowRecord, reason: str) -> None:
        if rec.sim_open is not None:
            rec.close_simulated(len(rec.ids))
        ids = self.e.trigger_after_think_ids if rec.thinking_done else self.e.trigger_ids
        rec.thinking_done = rec.thinking_done or self.e.trigger_closes_think
        rec.forced = reason
        self._append(slot, rec, ids, Provenance.FORCED)
        self._resume(slot, rec)

    # --- decode results ------------------------------------------------------------------------

    def _process(self, out) -> ToolGroup | None:
        """Reads one decode call's tokens into the records; returns the tool batch it submitted."""
        out = jax.device_get(out)
        to_submit = []
        for slot, rec in enumerate(list(self.slots)):
            if rec is None or rec.phase != DECODING:
                continue
            n = int(out.num_B[slot])
            halted, stop = bool(out.halted_B[slot]), int(out.stop_B[slot])
            if n:
                self.counts["sampled"] += n
                written = rec.add_sampled(out.tokens_BxN[slot, :n], out.logprobs_BxN[slot, :n],
                                          out.marks_BxN[slot, :n], self.e.stops, self.e.codec, self.e.tags)
                if halted and stop >= 0 and self.e.stops.kind(stop) == ACTION:
                    written = [j for j in written if j != len(rec.ids) - 1]
                for j in written:
                    self._simulated_action(rec, j)
            if halted:
                self._on_halt(slot, rec, stop, to_submit)
        if not to_submit:
            return None
        actions = [self.slots[s].pending for s in to_submit]
        group = ToolGroup(self.e.registry.submit(actions), to_submit, [self.slots[s] for s in to_submit], actions,
                          time.perf_counter())
        self.groups.append(group)
        self.counts["tool_batches"] += 1
        return group

    def _simulated_action(self, rec: RowRecord, j: int) -> None:
        action = self.e.registry.parse_action(rec.response_text(self.e.codec, j + 1))
        if action is not None and self.env == "simulated":
            rec.actions += 1
            rec.calls.append(ToolCall(action.tool, action.query, simulated=True))

    def _on_halt(self, slot: int, rec: RowRecord, stop: int, to_submit: list[int]) -> None:
        kind = self.e.stops.kind(stop) if stop >= 0 else None
        if kind == HALT:
            self._finish(slot, rec, "answered")
        elif kind == ACTION:
            self._on_action(slot, rec, to_submit)
        elif rec.forced:
            self._finish(slot, rec, "length")
        else:
            self._force(slot, rec, "tokens")

    def _on_action(self, slot: int, rec: RowRecord, to_submit: list[int]) -> None:
        action = self.e.registry.parse_action(rec.response_text(self.e.codec))
        if action is None or rec.forced or self.env == "none":
            self._resume(slot, rec)  # a closing tag outside a real call: keep going
        elif rec.actions < self.budget.actions and self.env == "real":
            rec.pending, rec.phase = action, WAITING
            to_submit.append(slot)
        elif rec.actions < self.budget.actions:  # simulated: the device counted a tag the parser did not
            rec.actions += 1
            rec.calls.append(ToolCall(action.tool, action.query, simulated=True))
            self._resume(slot, rec)
        elif not rec.limited and self._fits(rec, len(self.e.limit_ids[action.tool])):
            rec.limited += 1
            rec.calls.append(ToolCall(action.tool, action.query, limited=True))
            self._append(slot, rec, self.e.limit_ids[action.tool], Provenance.OBSERVATION)
            self._resume(slot, rec)
        else:
            self._force(slot, rec, "actions" if rec.limited else "tokens")

    # --- tools ---------------------------------------------------------------------------------

    def _collect_tools(self, block: bool) -> None:
        if block:
            waited = time.perf_counter()
            ToolGroup.wait_any(self.groups, self.cfg.tool_timeout_s)
            self.idle_wait_s += time.perf_counter() - waited
        keep = []
        for group in self.groups:
            results = group.results(self.e.registry, self.cfg.tool_timeout_s)
            if results is None:
                keep.append(group)
                continue
            wait = time.perf_counter() - group.submitted
            self.tool_wait_ema = wait if self.tool_wait_ema is None else 0.7 * self.tool_wait_ema + 0.3 * wait
            for slot, rec, action, result in zip(group.slots, group.records, group.actions, results):
                rec.pending = None
                rec.calls.append(ToolCall(action.tool, action.query, ok=result.ok, latency_s=result.latency_s,
                                          wait_s=wait, error=result.error))
                ids = list(self.e.codec.encode(result.text, add_special_tokens=False)) if result.text else []
                if not self._fits(rec, len(ids)):
                    self._force(slot, rec, "tokens")
                    continue
                rec.actions += 1
                if ids:
                    self._append(slot, rec, ids, Provenance.OBSERVATION)
                self._resume(slot, rec)
        self.groups = keep
