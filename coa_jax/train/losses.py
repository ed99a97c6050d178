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
    # Anchor both likelihoods to the stage's initial (frozen) model, DPO-style: the sigmoid scores
    # (Pc - Pc_init) - (Pr - Pr_init), so it starts at 0 for every pair and stops pushing once a pair
    # has moved by a few 1/beta. Off (the reference): the sigmoid scores Pc - Pr, and a rejected
    # continuation the model already finds far likelier (fluent reasoning against an unfamiliar
    # action) is pushed down until it is not, answer format and all. Costs a forward pass a step.
    reference: bool = False
    # Score the observation tokens of a continuation (search results the host wrote) in both terms,
    # as the reference does. False scores only model-written tokens: the chosen's observations are
    # most of its length, so with them Pc is mostly how well the model predicts search results.
    observations: bool = True

    def errors(self) -> list[tuple[str, str]]:
        out = []
        if self.window < 0:
            out.append(("window", f"must be >= 0 (0: whole continuations), got {self.window}"))
        if self.alpha < 0:
            out.append(("alpha", f"must be >= 0, got {self.alpha}"))
        if self.beta <= 0:
            out.append(("beta", f"must be > 0, got {self.beta}"))
        return out


def pair_scores(logp_chosen_BxT, mask_chosen_BxT, logp_rejected_BxT, mask_rejected_BxT, p: ContrastiveParams):
    """(Pc over the whole chosen continuation, Pc over its window, Pr over the rejected's window):
    length-normalised log-likelihoods, one a pair (the window is the whole continuation when 0)."""

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
    return pc_B, pc_window_B, pr_B


def contrastive_loss(logp_chosen_BxT, mask_chosen_BxT, logp_rejected_BxT, mask_rejected_BxT, pair_valid_B,
                     p: ContrastiveParams, ref_gap_B=None) -> LossOut:
    """Length-normalised log-likelihoods of chosen vs rejected continuations of one context.

    Row b of the chosen and rejected batches belong to the same pair; padded pairs have
    pair_valid_B == 0. `ref_gap_B`: the initial model's Pc - Pr of each pair (`pair_scores`),
    subtracted inside the sigmoid (`ContrastiveParams.reference`). Returns (sum over pairs,
    number of pairs, metrics).
    """
    valid = pair_valid_B.astype(jnp.float32)
    pc_B, pc_window_B, pr_B = pair_scores(logp_chosen_BxT, mask_chosen_BxT, logp_rejected_BxT, mask_rejected_BxT, p)
    gap_B = pc_window_B - pr_B
    if ref_gap_B is not None:
        gap_B = gap_B - ref_gap_B
    per_pair_B = -jax.nn.log_sigmoid(p.beta * (gap_B - p.margin)) + p.alpha * (-pc_B)
    total = jnp.sum(per_pair_B * valid)
    count = jnp.sum(valid)
    metrics = {
        "contrastive": (total, count),
        "chosen_ll": (jnp.sum(pc_B * valid), count),
        "rejected_ll": (jnp.sum(pr_B * valid), count),
        "pair_accuracy": (jnp.sum((pc_window_B > pr_B) * valid), count),
        "pair_gap": (jnp.sum(gap_B * valid), count),  # what the sigmoid scores (before beta and margin)
    }
    return total, count, metrics
