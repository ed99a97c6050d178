"""The GRPO stage body: rollouts from the engine, rewards, group advantages, clipped updates.

One step = P prompts x G samples rolled out in the current environment (simulated: the policy
writes observations itself; real: the tool answers), scored by a registered reward, turned into
group-normalised advantages, and used for `updates_per_batch` optimizer passes. Old log-probs
(the rollout policy) and reference log-probs are teacher-forced on the exact trajectory ids.

On a pod every process rolls out its own P/n prompts on its own devices (whole groups, so
advantages stay process-local), packs its rows, and places them in the rows of the global batch
its devices hold; the update runs over the pod. Trajectory k of the step samples from random
stream k whichever process runs it, so a pod's batch holds the one-process run's trajectories.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import jax
import numpy as np

from coa_jax.config.errors import ConfigError
from coa_jax.data.provenance import Provenance
from coa_jax.models.model_config import ModelConfig
from coa_jax.rollout.engine import RolloutEngine
from coa_jax.rollout.generate import bucket
from coa_jax.rollout.trajectory import Trajectory, pack_trajectories
from coa_jax.runtime.global_batch import local_rows, to_global
from coa_jax.runtime.process import pod_reduce
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


def check_pod_split(prompts_per_step: int, group_size: int, micro_batches: int) -> None:
    """Refuse a step that cannot split into whole groups per process and whole microbatches.

    Raises:
      ConfigError: naming `rl.prompts_per_step`.
    """
    n = jax.process_count()
    if prompts_per_step % n or (prompts_per_step // n * group_size) % micro_batches:
        raise ConfigError([("rl.prompts_per_step", f"{prompts_per_step} prompts x {group_size} samples must split "
                                                   f"into {n} process(es), each a multiple of rl.micro_batches="
                                                   f"{micro_batches} rows")])


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
                 filter_degenerate: bool, recompute_old_logprobs: bool, temperature: float, seed: int, pad_id: int,
                 sync: Callable | None = None, oversample: int = 1):
        """`sync`: the trainer's weights -> what the engine's `prepare_params` takes (default: as is;
        on a pod a `runtime.placement.WeightSync` to this process's devices).

        `oversample` k > 1: dynamic sampling. Each step rolls out k x P prompts and updates on P of
        their groups: each of the P slots takes the first of its k candidate groups whose rewards
        differ (`pick_groups`), so fewer updates are spent on groups with zero advantage; the
        update's shapes stay those of P groups. Rollout metrics count every sampled trajectory."""
        self.cfg, self.sharder, self.engine, self.reference = model_cfg, sharder, engine, reference
        self.prompts, self.reward_fn, self.grpo = prompts, reward_fn, grpo
        self.optimizer, self.state_shardings = optimizer, state_shardings
        self.g, self.p, self.total = group_size, prompts_per_step, total_steps
        self.env, self.sim_fraction = env, sim_fraction
        self.updates, self.micro = updates_per_batch, micro_batches
        self.normalize_std, self.filter_degenerate = normalize_std, filter_degenerate
        self.recompute_old, self.temperature, self.seed, self.pad_id = recompute_old_logprobs, temperature, seed, pad_id
        self.sync = sync or (lambda params: params)
        if oversample < 1:
            raise ValueError(f"oversample must be >= 1, got {oversample}")
        self.oversample = oversample
        check_pod_split(prompts_per_step, group_size, micro_batches)
        self.rank = jax.process_index()
        self.local_p = prompts_per_step // jax.process_count()  # whole groups per process
        self.rows = group_size * prompts_per_step // micro_batches  # per microbatch, over the pod
        self._steps: dict[int, Callable] = {}
        self._logprob_fns: dict[int, Callable] = {}

    # --- jitted pieces, one compile per row-length bucket ----------------------------------------

    def _logprob_fn(self, length: int):
        """Old / reference log-probs over [micro, rows/micro, length] (one microbatch at a time)."""
        if length not in self._logprob_fns:
            self._logprob_fns[length] = microbatched_logprobs(self.cfg, self.sharder, self.temperature, self.micro,
                                                              self.g * self.p, length, self.state_shardings.params)
        return self._logprob_fns[length]

    def _rows_sharding(self, length: int):
        """Sharding of a [micro, rows/micro, length] leaf of the step's batch."""
        return self.sharder.sharding((None, "batch", "length"), (self.micro, self.rows, length))

    def _batch_shardings(self, length: int) -> dict:
        two = self._rows_sharding(length)
        return {**dict.fromkeys(ROW_KEYS, two),
                "adv": self.sharder.sharding((None, "batch"), (self.micro, self.rows))}

    def _train_step(self, length: int):
        if length not in self._steps:
            cfg, grpo, temp, sharder = self.cfg, self.grpo, self.temperature, self.sharder

            def loss_fn(params, mb):
                logp, ent = token_logprobs(cfg, params, mb["tokens"], mb["positions"], mb["segments"], sharder, temp,
                                           with_entropy=True)
                return grpo_loss(logp, mb["old_logp"], mb["ref_logp"], mb["adv"], mb["policy_mask"],
                                 mb["response_mask"], grpo, ent)

            self._steps[length] = make_train_step(loss_fn, self.optimizer, self.state_shardings,
                                                  self._batch_shardings(length))
        return self._steps[length]

    def _place(self, rows: dict[str, np.ndarray], shardings: dict) -> dict:
        """This process's [rows, ...] arrays as [micro, rows/micro, ...] leaves of the global batch."""
        return to_global({k: v.reshape((self.micro, -1) + v.shape[1:]) for k, v in rows.items()}, shardings,
                         global_rows=self.rows)

    # --- one step ----------------------------------------------------------------------------------

    def __call__(self, state, step: int):
        t0 = time.perf_counter()
        env = env_for_step(self.env, self.sim_fraction, step, self.total)
        k = self.oversample
        first = self.rank * self.local_p * k
        idx = self.prompts.for_step(step, self.p * k, self.seed)[first:first + self.local_p * k]
        result = self.engine.rollout(self.engine.prepare_params(self.sync(state.params)),
                                     [self.prompts.ids[i] for i in idx], group_size=self.g, env=env,
                                     seed=self.seed * 1_000_003 + step, first_stream=first * self.g)
        sampled = result.trajectories
        t1 = time.perf_counter()
        sampled_rewards = np.asarray([self.reward_fn(t.response_text, self.prompts.golds[idx[t.prompt_index]])
                                      for t in sampled], np.float32)
        # by the rewards themselves (with rl.grpo.kl_in_reward no scored group is ever all equal)
        _, sampled_degenerate = group_advantages(sampled_rewards, self.g)
        keep_groups = pick_groups(sampled_rewards, self.g, k)
        rows = (keep_groups[:, None] * self.g + np.arange(self.g)).reshape(-1)
        trajs, rewards = [sampled[i] for i in rows], sampled_rewards[rows]
        length = bucket(int(pod_reduce({"n": max(len(t.token_ids) for t in trajs)}, "max")["n"]))
        batch = pack_trajectories(trajs, length, self.pad_id)
        policy = np.isin(batch.labels_BxL, POLICY_LABELS).astype(np.float32)
        response = (~np.isin(batch.labels_BxL, NON_RESPONSE)).astype(np.float32)
        shardings = self._batch_shardings(length)
        # placed once: the log-prob passes and every update read the same token arrays
        placed = self._place({"tokens": batch.tokens_BxL, "positions": batch.positions_BxL,
                              "segments": batch.segment_ids_BxL}, shardings)
        args = (placed["tokens"], placed["positions"], placed["segments"])
        logprob = self._logprob_fn(length)

        def rows_of(x):  # this process's rows, in the order they were packed
            return local_rows(x).reshape(batch.tokens_BxL.shape)

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
        micro = {**placed, **self._place({"old_logp": old.astype(np.float32), "ref_logp": ref, "policy_mask": policy,
                                          "response_mask": response, "adv": adv}, shardings)}
        train_step = self._train_step(length)
        update_metrics = {}
        for _ in range(self.updates):
            state, update_metrics = train_step(state, micro)
        update_metrics = jax.device_get(update_metrics)
        t3 = time.perf_counter()
        totals = pod_reduce(trajectory_totals(sampled, sampled_rewards, sampled_degenerate, result.stats,
                                              kept_groups=keep_groups), "sum")
        return state, {**{k: float(v) for k, v in update_metrics.items()}, **trajectory_metrics(totals, env),
                       "time_rollout_s": t1 - t0, "time_scoring_s": t2 - t1, "time_update_s": t3 - t2}


def pick_groups(rewards_N: np.ndarray, group_size: int, oversample: int) -> np.ndarray:
    """Dynamic sampling: the group each update slot takes from its `oversample` candidates.

    Rows are grouped consecutively and slot j's candidates are groups j*k .. j*k+k-1 (k =
    `oversample`); a slot takes its first candidate whose rewards differ, else its first
    candidate. Choosing per slot (not over the whole step) keeps a pod's choice equal to one
    process's, whichever process holds the slot.

    Returns the chosen group indices, one per slot, in order.
    """
    informative = ~group_advantages(rewards_N, group_size)[1].reshape(-1, oversample)  # [slots, k]
    return np.arange(len(informative)) * oversample + np.argmax(informative, axis=1)


ROW_KEYS = ("tokens", "positions", "segments", "old_logp", "ref_logp", "policy_mask", "response_mask")


def trajectory_totals(trajs: Sequence[Trajectory], rewards: np.ndarray, degenerate: np.ndarray,
                      stats, kept_groups: np.ndarray | None = None) -> dict[str, float]:
    """Sums and counts over one process's trajectories of a step (a pod adds them up).

    `degenerate`: per sampled group; `kept_groups`: the groups the update used (default: all)."""
    resp_len = np.asarray([len(t.token_ids) - t.prompt_len for t in trajs], np.float32)
    obs = np.asarray([t.count(Provenance.OBSERVATION) + t.count(Provenance.SIM_OBSERVATION) for t in trajs])
    calls = [c for t in trajs for c in t.tool_calls]
    real_calls = [c for c in calls if not c.simulated and not c.limited]
    kept = degenerate if kept_groups is None else degenerate[kept_groups]
    return {
        "trajectories": float(len(trajs)), "reward": float(rewards.sum()), "correct": float((rewards >= 1.0).sum()),
        "response_tokens": float(resp_len.sum()), "observation_tokens": float(obs.sum()),
        "actions": float(sum(t.num_actions for t in trajs)), "answered": float(sum(t.finish == "answered" for t in trajs)),
        "real_tool_calls": float(len(real_calls)), "simulated_tool_calls": float(sum(c.simulated for c in calls)),
        "tool_failures": float(sum(not c.ok for c in real_calls)),
        "tool_latency_s": float(sum(c.latency_s for c in real_calls)),
        "degenerate_groups": float(degenerate.sum()),
        "update_informative_groups": float((~kept).sum()),
        "rollout_tokens_per_s": float(stats.sampled_tokens_per_s),
    }  # fmt: skip


def trajectory_metrics(totals: dict[str, float], env: str) -> dict[str, float]:
    """Rollout-side metrics of one step (rewards, lengths, actions, tool calls and failures) from
    `trajectory_totals` (of one process, or summed over a pod: tokens/s is then the pod's)."""
    n = max(totals["trajectories"], 1.0)
    return {
        "reward": totals["reward"] / n, "accuracy": totals["correct"] / n, "response_length": totals["response_tokens"] / n,
        "actions_per_trajectory": totals["actions"] / n,
        "observation_token_fraction": totals["observation_tokens"] / max(totals["response_tokens"], 1.0),
        "real_tool_calls": totals["real_tool_calls"], "simulated_tool_calls": totals["simulated_tool_calls"],
        "tool_failures": totals["tool_failures"],
        "tool_latency_mean_s": totals["tool_latency_s"] / max(totals["real_tool_calls"], 1.0),
        "answered_fraction": totals["answered"] / n, "degenerate_groups": totals["degenerate_groups"],
        "update_informative_groups": totals["update_informative_groups"],
        "env_real": float(env == "real"), "rollout_tokens_per_s": totals["rollout_tokens_per_s"],
    }  # fmt: skip
