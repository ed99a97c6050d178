"""The rollout engine: SPEC Algorithm 1 for prompts x G, jitted device segments and a host loop.

    engine = RolloutEngine(model_cfg, sharder, RolloutConfig(...), tokenizer, eos_ids=[...],
                           registry=ToolRegistry.from_config({"search": "bm25"}, {...}))
    result = engine.rollout(engine.prepare_params(params), prompt_ids, group_size=5, env="real")
    result.trajectories[k].token_ids / .labels / .logprobs / .response_text

Every trajectory sits in one row ("slot") of a fixed-shape batch; more trajectories than slots
wait in a queue and take the slot of one that finished (continuous batching). The host loop:

  1. writes new prompts, observations and forced triggers into the rows that need them (one
     `control` and one `append` call) and runs a decode segment over every row that is not
     waiting; the segment returns as soon as a row halts (eos, an action's closing tag, budget);
  2. reads the segment's tokens, confirms actions on the decoded text, and submits the actions of
     all rows that stopped at one as one batch to the tool registry (a future), waiting a short
     grace period so fast tools answer before the next segment;
  3. collects finished tool batches without blocking, so slow tools for some rows overlap with
     decoding of the others; it blocks on tools only when no row is left to decode.

Budgets (per row): T = max_actions tool calls; the next call gets the limit observation and the one
after that forces the answer. N = max_response_tokens; the policy may use N - answer_reserve of it
(an observation that would not fit forces the answer instead), the forced answer the rest.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax

from coa_jax.env.registry import ToolRegistry
from coa_jax.env.tags import THINK_CLOSE
from coa_jax.models.model_config import ModelConfig
from coa_jax.models.params import Params
from coa_jax.rollout.config import ENVS, RolloutConfig
from coa_jax.rollout.host_loop import Budget, HostLoop, RolloutResult, RolloutStats
from coa_jax.rollout.rows import Job
from coa_jax.rollout.sampler import Sampler, SamplerShape
from coa_jax.rollout.stops import StopSet, TextCodec, build_stop_set
from coa_jax.sharding.rules import Sharder

__all__ = ["RolloutEngine", "RolloutResult", "RolloutStats", "shared_sampler"]


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
        """Params in the sampler's shardings and compute dtype (call once per weight update).

        With a bfloat16 compute dtype the sampler holds and reads bfloat16 weights (see
        `models.params.compute_dtype_params`); the training params are left untouched.
        """
        return self.sampler.prepare(params)

    def rollout(self, params: Params, prompts: Sequence[Sequence[int]], *, group_size: int = 1,
                env: str | None = None, seed: int | None = None, max_actions: int | None = None,
                max_response_tokens: int | None = None, first_stream: int = 0) -> RolloutResult:
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
          first_stream: trajectory k uses random stream `first_stream + k`; a process of a pod
            that samples rows [s, s + n) of a global batch passes s, so its trajectories equal
            those of the same rows sampled in one process.

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
            row = tuple(int(t) for t in ids)
            jobs += [Job(p * group_size + g, p, g, row, first_stream + p * group_size + g) for g in range(group_size)]
        budget = Budget(self.cfg.max_actions if max_actions is None else max_actions,
                         self.cfg.max_response_tokens if max_response_tokens is None else max_response_tokens,
                         self.cfg.answer_reserve)
        if budget.actions < 0 or not budget.reserve < budget.tokens <= self.cfg.max_response_tokens:
            raise ValueError(f"bad budgets for this engine: {budget}")
        loop = HostLoop(self, params, jobs, env, budget, jax.random.key(self.cfg.seed if seed is None else seed))
        return loop.run()


