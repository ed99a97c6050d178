"""The rollout engine: SPEC Algorithm 1 for prompts x G, jitted device segments and a host loop.

    engine = RolloutEngine(model_cfg, sharder, RolloutConfig(...), tokenizer, eos_ids=[...],
                           registry=ToolRegistry.from_config({"search": "bm25"}, {...}))
    result = engine.rollout(engine.prepare_params(params), prompt_ids, group_size=5, env="real")
    result.trajectories[k].token_ids / .labels / .logprobs / .response_text

Every trajectory sits in one row ("slot") of a fixed-shape batch; more trajectories than slots
wait in a queue and take the slot of one that finished (continuous batching). The host loop:

  1. writes new prompts, observations and forced triggers into the rows that need them (one
     `control` and one `append` call) and dispatches a decode segment, without waiting for it;
  2. meanwhile reads the *previous* segment's tokens (a look-behind; rows that halted stay halted
     on device until step 1 re-activates them), confirms actions on the decoded text, and submits
     the actions of all rows that stopped at one as one batch to the tool registry (a future);
  3. collects finished tool batches without blocking, so slow tools for some rows overlap with
     decoding of the others; it blocks on tools only when no row is left to decode.

Budgets (per row): T = max_actions tool calls; the next call gets the limit observation and the one
after that forces the answer. N = max_response_tokens; the policy may use N - answer_reserve of it
(an observation that would not fit forces the answer instead), the forced answer the rest.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import time
from collections.abc import Sequence

import jax
import numpy as np

from coa_jax.env.registry import ToolRegistry
from coa_jax.env.tags import THINK_CLOSE
from coa_jax.models.model_config import ModelConfig
from coa_jax.models.params import Params
from coa_jax.rollout.config import ENVS, RolloutConfig
from coa_jax.rollout.host_io import RowWrites, ToolGroup
from coa_jax.rollout.rows import DECODING, DONE, WAITING, Job, RowRecord
from coa_jax.rollout.sampler import ACTION, HALT, Sampler, SamplerShape
from coa_jax.rollout.stops import StopSet, TextCodec, build_stop_set
from coa_jax.rollout.trajectory import ToolCall, Trajectory
from coa_jax.data.provenance import Provenance
from coa_jax.sharding.rules import Sharder

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


@functools.lru_cache(maxsize=8)
def shared_sampler(model_cfg: ModelConfig, sharder: Sharder, shape: SamplerShape, sampling, stops: tuple,
                   kinds: tuple, exit_after_halts: int) -> Sampler:
    """One Sampler (and its compiled programs) per distinct setting, shared by every engine."""
    return Sampler(model_cfg, sharder, shape, sampling, [list(s) for s in stops], stop_kinds=list(kinds),
                   exit_after_halts=exit_after_halts)


class RolloutEngine:
    """Generates agent trajectories with one compiled sampler (see the module docstring).

    Args:
      model_cfg / sharder: the policy's architecture and the sampling mesh and rules.
      cfg: budgets, batch shape, sampling.
      codec: the tokenizer (encode observations and triggers; decode to read actions).
      eos_ids: ids that end a trajectory.
      registry: the tool library (None: no tools; only env "none" is possible).

    Raises:
      ValueError: invalid config, or an answer trigger that does not fit in `answer_reserve`.
    """

    def __init__(self, model_cfg: ModelConfig, sharder: Sharder, cfg: RolloutConfig, codec: TextCodec, *,
                 eos_ids: Sequence[int], registry: ToolRegistry | None = None):
        problems = cfg.errors()
        if problems:
            raise ValueError("invalid RolloutConfig: " + "; ".join(f"{k}: {m}" for k, m in problems))
        if not eos_ids:
            raise ValueError("eos_ids must not be empty")
        self.cfg, self.codec, self.registry = cfg, codec, registry
        self.eos_ids = tuple(int(i) for i in eos_ids)
        specs = [t.spec for t in registry.tools] if registry is not None else []
        think_close = registry.think_close if registry is not None else THINK_CLOSE
        self.stops: StopSet = build_stop_set(
            codec, self.eos_ids, action_tags={s.name: s.close_tag for s in specs},
            result_tags={s.name: (s.result_open, s.result_close) for s in specs}, think_close=think_close)
        self.tags = {"think_close": think_close or ""}
        for s in specs:
            self.tags.update({s.name: s.close_tag, f"open:{s.name}": s.result_open, f"close:{s.name}": s.result_close})
        self.sampler = shared_sampler(model_cfg, sharder, SamplerShape(cfg.batch_slots, cfg.cache_len,
                                                                       cfg.segment_steps),
                                      cfg.sampling, tuple(e.ids for e in self.stops.entries), tuple(self.stops.kinds),
                                      cfg.exit_after_halts)
        self.trigger_ids = list(codec.encode(cfg.answer_trigger, add_special_tokens=False))
        self.trigger_after_think_ids = list(codec.encode(cfg.answer_trigger_after_think, add_special_tokens=False))
        self.trigger_closes_think = bool(think_close) and think_close in cfg.answer_trigger
        if max(len(self.trigger_ids), len(self.trigger_after_think_ids)) >= cfg.answer_reserve:
            raise ValueError(f"the answer triggers take {len(self.trigger_ids)} / {len(self.trigger_after_think_ids)} "
                             f"tokens; answer_reserve={cfg.answer_reserve} must exceed that")
        self.limit_ids = {s.name: list(codec.encode(registry.limit_result(s.name).text, add_special_tokens=False))
                          for s in specs}  # fmt: skip

    def prepare_params(self, params: Params) -> Params:
        """Params placed in the sampler's shardings (call once per weight update)."""
        return jax.device_put(params, self.sampler.param_shardings)

    def rollout(self, params: Params, prompts: Sequence[Sequence[int]], *, group_size: int = 1,
                env: str | None = None, seed: int | None = None, max_actions: int | None = None,
                max_response_tokens: int | None = None) -> RolloutResult:
        """Generate `group_size` trajectories for every prompt.

        Args:
          params: the policy's weights, in `prepare_params` shardings.
          prompts: prompt token ids (chat template applied), each at most `max_prompt_tokens`.
          group_size: G, samples per prompt (trajectory k = prompt k // G, sample k % G).
          env: "real", "simulated" or "none" (default: the config's).
          seed: base of the random streams (default: the config's). Trajectory k's stream depends
            only on (seed, k), not on the batch it ran in.
          max_actions / max_response_tokens: T and N for this call (default: the config's; N may
            only be lowered, and must stay above `answer_reserve`). No recompilation.

        Returns:
          The trajectories in order and the call's counters.
        """
        env = self.cfg.env if env is None else env
        if env not in ENVS:
            raise ValueError(f"env must be one of {ENVS}, got {env!r}")
        if env != "none" and self.registry is None:
            raise ValueError(f"env {env!r} needs a tool registry")
        if group_size < 1:
            raise ValueError(f"group_size must be >= 1, got {group_size}")
        jobs = []
        for p, ids in enumerate(prompts):
            if not 0 < len(ids) <= self.cfg.max_prompt_tokens:
                raise ValueError(f"prompt {p} has {len(ids)} tokens; 1..{self.cfg.max_prompt_tokens} allowed")
            jobs += [Job(p * group_size + g, p, g, tuple(int(t) for t in ids)) for g in range(group_size)]
        budget = _Budget(self.cfg.max_actions if max_actions is None else max_actions,
                         self.cfg.max_response_tokens if max_response_tokens is None else max_response_tokens,
                         self.cfg.answer_reserve)
        if budget.actions < 0 or not budget.reserve < budget.tokens <= self.cfg.max_response_tokens:
            raise ValueError(f"bad budgets for this engine: {budget}")
        run = _Run(self, params, jobs, env, budget, jax.random.key(self.cfg.seed if seed is None else seed))
        return run.run()


@dataclasses.dataclass(frozen=True)
class _Budget:
    actions: int  # T
    tokens: int  # N
    reserve: int


class _Run:
    """The host loop of one `rollout` call."""

    def __init__(self, engine: RolloutEngine, params: Params, jobs: list[Job], env: str, budget: _Budget,
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
        self.n_jobs = len(jobs)

    def run(self) -> RolloutResult:
        start = time.perf_counter()
        sampler = self.e.sampler
        state = sampler.init_state()
        in_flight = None
        while len(self.done) < self.n_jobs:
            self._admit()
            self._collect_tools(block=False)
            ends = {slot: len(rec.ids) for slot, rec in enumerate(self.slots) if rec is not None}
            state, appended = self.writes.flush(sampler, self.params, state, ends)
            self.counts["appended"] += appended
            dispatched = None
            decoding = [len(r.ids) for r in self.slots if r is not None and r.phase == DECODING]
            if decoding:
                # rows may have grown by one unread segment since the host last looked
                window = sampler.window(max(decoding) + 2 * self.cfg.segment_steps)
                state, out = sampler.decode(self.params, state, rng=self.rng, window=window)
                dispatched = (out, list(self.slots))
                self.counts["decode_calls"] += 1
            if in_flight is not None:
                self._process(*in_flight)
            elif dispatched is None and not self.writes.pending and not self.groups:
                raise RuntimeError(f"rollout stalled with {self.n_jobs - len(self.done)} trajectories unfinished")
            in_flight = dispatched
            if not self.cfg.overlap_tools:
                while self.groups:
                    self._collect_tools(block=True)
            elif in_flight is None and not self.writes.pending and self.groups:
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
                                seed=job.index)

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
            rec._label_simulated(len(rec.ids))
        ids = self.e.trigger_after_think_ids if rec.thinking_done else self.e.trigger_ids
        rec.thinking_done = rec.thinking_done or self.e.trigger_closes_think
        rec.forced = reason
        self._append(slot, rec, ids, Provenance.FORCED)
        self._resume(slot, rec)

    # --- decode results ------------------------------------------------------------------------

    def _process(self, out, snapshot: list[RowRecord | None]) -> None:
        out = jax.device_get(out)
        to_submit = []
        for slot, rec in enumerate(snapshot):
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
        if to_submit:
            actions = [self.slots[s].pending for s in to_submit]
            self.groups.append(ToolGroup(self.e.registry.submit(actions), to_submit,
                                         [self.slots[s] for s in to_submit], actions, time.perf_counter()))
            self.counts["tool_batches"] += 1

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
            for slot, rec, action, result in zip(group.slots, group.records, group.actions, results):
                rec.pending = None
                rec.calls.append(ToolCall(action.tool, action.query, ok=result.ok, latency_s=result.latency_s,
                                          wait_s=wait))
                ids = list(self.e.codec.encode(result.text, add_special_tokens=False)) if result.text else []
                if not self._fits(rec, len(ids)):
                    self._force(slot, rec, "tokens")
                    continue
                rec.actions += 1
                if ids:
                    self._append(slot, rec, ids, Provenance.OBSERVATION)
                self._resume(slot, rec)
        self.groups = keep
