"""GRPO: group-normalised advantages, the PPO-clipped policy loss and the KL term (SPEC 2.4).

Two masks per token:
  policy_mask   tokens the policy wrote (reasoning, actions, answer); observations excluded
  response_mask every token after the prompt (policy tokens, observations, forced triggers)
Default: loss, KL and every denominator use policy_mask. `autocoa_compat` reproduces the
reference: only the advantage is zeroed on observations; the KL term, the entropy and the
token-mean denominators still count every response token.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

KL_ESTIMATORS = ("low_var_kl", "k1", "k2")
AGGREGATIONS = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum")


@dataclasses.dataclass(frozen=True)
class GRPOParams:
    clip_low: float = 0.2  # epsilon: ratio clipped to [1 - clip_low, 1 + clip_high]
    clip_high: float = 0.2
    kl_coef: float = 0.001  # beta
    kl_estimator: str = "low_var_kl"
    kl_in_reward: bool = False  # True: beta * KL is subtracted from the reward instead of the loss
    aggregation: str = "token_mean"
    autocoa_compat: bool = False

    def errors(self) -> list[tuple[str, str]]:
        out = []
        if self.kl_estimator not in KL_ESTIMATORS:
            out.append(("kl_estimator", f"must be one of {KL_ESTIMATORS}, got {self.kl_estimator!r}"))
        if self.aggregation not in AGGREGATIONS:
            out.append(("aggregation", f"must be one of {AGGREGATIONS}, got {self.aggregation!r}"))
        if not 0 <= self.clip_low < 1 or self.clip_high < 0:
            out.append(("clip_low", "clip range must satisfy 0 <= clip_low < 1 and clip_high >= 0"))
        if self.kl_coef < 0:
            out.append(("kl_coef", f"must be >= 0, got {self.kl_coef}"))
        return out


def group_advantages(rewards_N: np.ndarray, group_size: int, *, normalize_std: bool = True,
                     eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Per-trajectory advantage (r - mean(group)) / (std(group) + eps); rows are grouped consecutively.

    Returns (advantages [N], degenerate [N // G] bool: groups whose rewards are all equal).
    """
    r = np.asarray(rewards_N, np.float64).reshape(-1, group_size)
    centered = r - r.mean(axis=1, keepdims=True)
    if normalize_std:
        # unbiased std, as torch.std in the reference's GRPO
        std = r.std(axis=1, ddof=1, keepdims=True) if group_size > 1 else np.zeros_like(r[:, :1])
        centered = centered / (std + eps)
    degenerate = np.all(r == r[:, :1], axis=1)
    return centered.reshape(-1).astype(np.float32), degenerate


def kl_penalty(logp, ref_logp, estimator: str):
    """Per-token KL estimate of pi from pi_ref (k3 'low_var_kl' is clamped to [-10, 10] as in verl)."""
    if estimator == "k1":
        return logp - ref_logp
    if estimator == "k2":
        return 0.5 * jnp.square(logp - ref_logp)
    d = jnp.clip(ref_logp - logp, -20.0, 20.0)
    return jnp.clip(jnp.exp(d) - d - 1.0, -10.0, 10.0)


def _aggregate(values_BxT, mask_BxT, mode: str):
    """(sum, count) for the aggregation mode; count is what the global denominator adds up."""
    if mode == "token_mean":
        return jnp.sum(values_BxT * mask_BxT), jnp.sum(mask_BxT)
    per_seq_sum = jnp.sum(values_BxT * mask_BxT, axis=-1)
    has_tokens = (jnp.sum(mask_BxT, axis=-1) > 0).astype(jnp.float32)
    if mode == "seq_mean_token_mean":
        per_seq = per_seq_sum / jnp.maximum(jnp.sum(mask_BxT, axis=-1), 1.0)
    else:  # seq_mean_token_sum
        per_seq = per_seq_sum
    return jnp.sum(per_seq * has_tokens), jnp.sum(has_tokens)


def grpo_loss(logp_BxT, old_logp_BxT, ref_logp_BxT, advantages_B, policy_mask_BxT, response_mask_BxT,
              p: GRPOParams, entropy_BxT=None):
    """(loss sum, count, metrics {name: (sum, count)}) for one microbatch."""
    policy = policy_mask_BxT.astype(jnp.float32)
    response = response_mask_BxT.astype(jnp.float32)
    if p.autocoa_compat:
        adv_BxT = advantages_B[:, None] * policy  # the mask lives on the advantage only
        mask = response
    else:
        adv_BxT = jnp.broadcast_to(advantages_B[:, None], logp_BxT.shape)
        mask = policy
    ratio = jnp.exp(jnp.clip(logp_BxT - old_logp_BxT, -20.0, 20.0))
    pg1 = -adv_BxT * ratio
    pg2 = -adv_BxT * jnp.clip(ratio, 1.0 - p.clip_low, 1.0 + p.clip_high)
    pg_BxT = jnp.maximum(pg1, pg2)
    per_token = pg_BxT
    kl_BxT = kl_penalty(logp_BxT, ref_logp_BxT, p.kl_estimator)
    if p.kl_coef and not p.kl_in_reward:
        per_token = per_token + p.kl_coef * kl_BxT
    total, count = _aggregate(per_token, mask, p.aggregation)
    n_tok = jnp.sum(mask)
    metrics = {
        "pg_loss": _aggregate(pg_BxT, mask, p.aggregation),
        "kl": (jnp.sum(kl_BxT * mask), n_tok),
        "clip_fraction": (jnp.sum((pg2 > pg1) * mask), n_tok),
        "ratio": (jnp.sum(ratio * mask), n_tok),
    }
    if entropy_BxT is not None:
        metrics["entropy"] = (jnp.sum(entropy_BxT * mask), n_tok)
    return total, count, metrics


def sequence_kl(logp_NxT: np.ndarray, ref_logp_NxT: np.ndarray, mask_NxT: np.ndarray, estimator: str) -> np.ndarray:
    """Summed per-sequence KL (for the KL-in-reward variant), on the host."""
    kl = np.asarray(kl_penalty(jnp.asarray(logp_NxT), jnp.asarray(ref_logp_NxT), estimator))
    return np.sum(kl * mask_NxT, axis=-1)
