"""Losses of the AutoCoA stages. Each returns (sum, count) so accumulation weights correctly.

A mean of per-microbatch means is wrong when microbatches hold different numbers of tokens;
returning (sum, count) lets the step divide once by the total count. Metrics are returned the
same way, as {name: (sum, count)}.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

LossOut = tuple[jax.Array, jax.Array, dict[str, tuple[jax.Array, jax.Array]]]


def masked_nll(logp_BxT, mask_BxT) -> LossOut:
    """SFT stages 2/3: next-token NLL over masked tokens (stage 2 masks observations, 3 does not)."""
    mask = mask_BxT.astype(jnp.float32)
    total = -jnp.sum(logp_BxT * mask)
    count = jnp.sum(mask)
    return total, count, {"nll": (total, count)}


@dataclasses.dataclass(frozen=True)
class ContrastiveParams:
    """SFT stage 1 (SPEC 2.1): -log sigmoid(beta * (Pc - Pr - margin)) + alpha * (-Pc)."""

    alpha: float = 0.2  # weight of the auxiliary chosen-NLL term
    beta: float = 1.0
    margin: float = 0.0
    # Continuation tokens the contrastive term scores, from the start of each continuation; 0: all
    # of them (the reference). The pair differs in where it starts (act or not); a long rejected
    # continuation also holds the answer format ("</think> ... \boxed{...}"), which the full-length
    # term pushes down with it. The auxiliary NLL always covers the whole chosen continuation.
    window: int = 0

    def errors(self) -> list[tuple[str, str]]:
        out = []
        if self.window < 0:
            out.append(("window", f"must be >= 0 (0: whole continuations), got {self.window}"))
        if self.alpha < 0:
            out.append(("alpha", f"must be >= 0, got {self.alpha}"))
        if self.beta <= 0:
            out.append(("beta", f"must be > 0, got {self.beta}"))
        return out


def contrastive_loss(logp_chosen_BxT, mask_chosen_BxT, logp_rejected_BxT, mask_rejected_BxT, pair_valid_B,
                     p: ContrastiveParams) -> LossOut:
    """Length-normalised log-likelihoods of chosen vs rejected continuations of one context.

    Row b of the chosen and rejected batches belong to the same pair; padded pairs have
    pair_valid_B == 0. Returns (sum over pairs, number of pairs, metrics).
    """
    valid = pair_valid_B.astype(jnp.float32)

    def norm_ll(logp, mask):
        m = mask.astype(jnp.float32)
        return jnp.sum(logp * m, axis=-1) / jnp.maximum(jnp.sum(m, axis=-1), 1.0)

    def first(mask):  # the first `window` scored tokens of each row (one pair a row)
        m = mask.astype(jnp.float32)
        return m * (jnp.cumsum(m, axis=-1) <= p.window)

    pc_B = norm_ll(logp_chosen_BxT, mask_chosen_BxT)
    if p.window:
        pc_window_B = norm_ll(logp_chosen_BxT, first(mask_chosen_BxT))
        pr_B = norm_ll(logp_rejected_BxT, first(mask_rejected_BxT))
    else:
        pc_window_B, pr_B = pc_B, norm_ll(logp_rejected_BxT, mask_rejected_BxT)
    per_pair_B = -jax.nn.log_sigmoid(p.beta * (pc_window_B - pr_B - p.margin)) + p.alpha * (-pc_B)
    total = jnp.sum(per_pair_B * valid)
    count = jnp.sum(valid)
    metrics = {
        "contrastive": (total, count),
        "chosen_ll": (jnp.sum(pc_B * valid), count),
        "rejected_ll": (jnp.sum(pr_B * valid), count),
        "pair_accuracy": (jnp.sum((pc_window_B > pr_B) * valid), count),
    }
    return total, count, metrics
