"""The GRPO stage body: rollouts from the engine, rewards, group advantages, clipped updates.

One step = P prompts x G samples rolled out in the current environment (simulated: the policy
writes observations itself; real: the tool answers), scored by a registered reward, turned into
group-normalised advantages, and used for `updates_per_batch` optimizer passes. Old log-probs
(the rollout policy) and reference log-probs are teacher-forced on the exact trajectory ids.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from coa_jax.data.provenance import Provenance
from coa_jax.models.model_config import ModelConfig
from coa_jax.rollout.engine import RolloutEngine
from coa_jax.rollout.generate import bucket
from coa_jax.rollout.trajectory import Trajectory, pack_trajectories
from coa_jax.sharding.rules import Sharder
from coa_jax.train.grpo_loss import GRPOParams, group_advantages, grpo_loss, sequence_kl
from coa_jax.train.logprobs import microbatched_logprobs, token_logprobs
from coa_jax.train.reference import ReferenceModel
from coa_jax.train.step import make_train_step

POLICY_LABELS = [int(Provenance.POLICY), int(Provenance.ANSWER)]
NON_RESPONSE = [int(Provenance.PROMPT), int(Provenance.PAD)]


@dataclasses.dataclass(frozen=True)
class PromptSet:
    """Training prompts: chat-templated token ids and their gold answers."""

    ids: list[list[int]]
    golds: list[tuple[str, ...]]

    def __post_init__(self):
        if len(self.ids) != len(self.golds) or not self.ids:
            raise ValueError(f"PromptSet needs as many golds as prompts (got {len(self.ids)} / {len(self.golds)})")

    def for_step(self, step: int, per_step: int, seed: int) -> list[int]:
        """Prompt indices of `step`: epochs of seeded permutations, so the position is the step."""
        n = len(self.ids)
        out = []
        for k in range(step * per_step, (step + 1) * per_step):
            epoch, offset = divmod(k, n)
            out.append(int(np.random.default_rng([seed, epoch]).permutation(n)[offset]))
        return out


def env_for_step(env: str, sim_fraction: float, step: int, total_steps: int) -> str:
    """The rollout environment of a step: the paper's schedule runs simulated first, then real."""
    if env == "sim":
        return "simulated"
    if env == "real":
        return "real"
    return "simulated" if step < round(sim_fraction * total_steps) else "real"


class GRPOBody:
    """`body(state, step) -> (state, metrics)` for the shared training loop."""

    def __init__(self, model_cfg: ModelConfig, sharder: Sharder, engine: RolloutEngine, reference: ReferenceModel,
                 prompts: PromptSet, reward_fn: Callable[[str, Sequence[str]], float], *, grpo: GRPOParams,
                 optimizer, state_shardings, group_size: int, prompts_per_step: int, total_steps: int, env: str,
                 sim_fraction: float, updates_per_batch: int, micro_batches: int, normalize_std: bool,
                 filter_degenerate: bool, recompute_old_logprobs: bool, temperature: float, seed: int, pad_id: int):
        self.cfg, self.sharder, self.engine, self.reference = model_cfg, sharder, engine, reference
        self.prompts, self.reward_fn, self.grpo = prompts, reward_fn, grpo
        self.optimizer, self.state_shardings = optimizer, state_shardings
        self.g, self.p, self.total = group_size, prompts_per_step, total_steps
        self.env, self.sim_fraction = env, sim_fraction
        self.updates, self.micro = updates_per_batch, micro_batches
        self.normalize_std, self.filter_degenerate = normalize_std, filter_degenerate
        self.recompute_old, self.temperature, self.seed, self.pad_id = recompute_old_logprobs, temperature, seed, pad_id
        self._steps: dict[int, Callable] = {}
        self._logprob_fns: dict[int, Callable] = {}

    # --- jitted pieces, one compile per row-length bucket ----------------------------------------

    def _logprob_fn(self, length: int):
        """Old / reference log-probs over [micro, rows/micro, length] (one microbatch at a time)."""
        if length not in self._logprob_fns:
            self._logprob_fns[length] = microbatched_logprobs(self.cfg, self.sharder, self.temperature, self.micro,
                                                              self.g * self.p, length, self.state_shardings.params)
        return self._logprob_fns[length]

    def _train_step(self, length: int):
        if length not in self._steps:
            rows = self.g * self.p // self.micro
            two = self.sharder.sharding((None, "batch", "length"), (self.micro, rows, length))
            one = self.sharder.sharding((None, "batch"), (self.micro, rows))
            batch_sh = {k: two for k in ("tokens", "positions", "segments", "old_logp", "ref_logp", "policy_mask",
                                         "response_mask")}
            batch_sh["adv"] = one
            cfg, grpo, temp, sharder = self.cfg, self.grpo, self.temperature, self.sharder

            def loss_fn(params, mb):
                logp, ent = token_logprobs(cfg, params, mb["tokens"], mb["positions"], mb["segments"], sharder, temp,
                                           with_entropy=True)
                return grpo_loss(logp, mb["old_logp"], mb["ref_logp"], mb["adv"], mb["policy_mask"],
                                 mb["response_mask"], grpo, ent)

            self._steps[length] = make_train_step(loss_fn, self.optimizer, self.state_shardings, batch_sh)
        return self._steps[length]

    # --- one step ----------------------------------------------------------------------------------

    def __call__(self, state, step: int):
        t0 = time.perf_counter()
        env = env_for_step(self.env, self.sim_fraction, step, self.total)
        idx = self.prompts.for_step(step, self.p, self.seed)
        result = self.engine.rollout(self.engine.prepare_params(state.params), [self.prompts.ids[i] for i in idx],
                                     group_size=self.g, env=env, seed=self.seed * 1_000_003 + step)
        trajs = result.trajectories
        t1 = time.perf_counter()
        rewards = np.asarray([self.reward_fn(t.response_text, self.prompts.golds[idx[t.prompt_index]])
                              for t in trajs], np.float32)
        length = bucket(max(len(t.token_ids) for t in trajs))
        batch = pack_trajectories(trajs, length, self.pad_id)
        policy = np.isin(batch.labels_BxL, POLICY_LABELS).astype(np.float32)
        response = (~np.isin(batch.labels_BxL, NON_RESPONSE)).astype(np.float32)
        split = (self.micro, -1, length)
        args = tuple(jnp.asarray(a.reshape(split)) for a in (batch.tokens_BxL, batch.positions_BxL,
                                                              batch.segment_ids_BxL))
        logprob = self._logprob_fn(length)

        def rows_of(x):
            return np.asarray(x).reshape(batch.tokens_BxL.shape)

        old = rows_of(logprob(state.params, *args)) if self.recompute_old else batch.logprobs_BxL
        ref = rows_of(logprob(self.reference.params(), *args))
        scored = rewards
        kl_mask = response if self.grpo.autocoa_compat else policy
        if self.grpo.kl_in_reward and self.grpo.kl_coef:
            scored = rewards - self.grpo.kl_coef * sequence_kl(old, ref, kl_mask, self.grpo.kl_estimator)
        adv, degenerate = group_advantages(scored, self.g, normalize_std=self.normalize_std)
        if self.filter_degenerate:
            keep = np.repeat(~degenerate, self.g).astype(np.float32)[:, None]
            policy, response = policy * keep, response * keep
        t2 = time.perf_counter()
        full = {"tokens": batch.tokens_BxL, "positions": batch.positions_BxL, "segments": batch.segment_ids_BxL,
                "old_logp": old.astype(np.float32), "ref_logp": ref, "policy_mask": policy, "response_mask": response,
                "adv": adv}
        micro = {k: v.reshape((self.micro, -1) + v.shape[1:]) for k, v in full.items()}
        train_step = self._train_step(length)
        update_metrics = {}
        for _ in range(self.updates):
            state, update_metrics = train_step(state, micro)
        update_metrics = jax.device_get(update_metrics)
        t3 = time.perf_counter()
        return state, {**{k: float(v) for k, v in update_metrics.items()},
                       **trajectory_metrics(trajs, rewards, env, degenerate, result.stats),
                       "time_rollout_s": t1 - t0, "time_scoring_s": t2 - t1, "time_update_s": t3 - t2}


def trajectory_metrics(trajs: Sequence[Trajectory], rewards: np.ndarray, env: str, degenerate: np.ndarray,
                       stats) -> dict[str, float]:
    """Rollout-side metrics of one step (rewards, lengths, actions, tool calls and failures)."""
    resp_len = np.asarray([len(t.token_ids) - t.prompt_len for t in trajs], np.float32)
    obs = np.asarray([t.count(Provenance.OBSERVATION) + t.count(Provenance.SIM_OBSERVATION) for t in trajs])
    calls = [c for t in trajs for c in t.tool_calls]
    real_calls = [c for c in calls if not c.simulated and not c.limited]
    latencies = [c.latency_s for c in real_calls]
    return {
        "reward": float(rewards.mean()), "accuracy": float((rewards >= 1.0).mean()),
        "response_length": float(resp_len.mean()), "actions_per_trajectory": float(np.mean([t.num_actions for t in trajs])),
        "observation_token_fraction": float(obs.sum() / max(resp_len.sum(), 1)),
        "real_tool_calls": float(len(real_calls)),
        "simulated_tool_calls": float(sum(c.simulated for c in calls)),
        "tool_failures": float(sum(not c.ok for c in real_calls)),
        "tool_latency_mean_s": float(np.mean(latencies)) if latencies else 0.0,
        "answered_fraction": float(np.mean([t.finish == "answered" for t in trajs])),
        "degenerate_groups": float(degenerate.sum()), "env_real": float(env == "real"),
        "rollout_tokens_per_s": float(stats.sampled_tokens_per_s),
    }  # fmt: skip
