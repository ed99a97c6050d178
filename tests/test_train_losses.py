"""Every loss and the advantage computation against an independent NumPy implementation."""

import numpy as np
import pytest

import jax.numpy as jnp

from coa_jax.train.grpo_loss import GRPOParams, group_advantages, grpo_loss
from coa_jax.train.losses import ContrastiveParams, contrastive_loss, masked_nll

RS = np.random.RandomState(0)


def _np_log_sigmoid(x):
    return -np.log1p(np.exp(-x))


def test_masked_nll_matches_numpy():
    logp = -RS.rand(4, 9).astype(np.float32)
    mask = (RS.rand(4, 9) > 0.4).astype(np.float32)
    total, count, _ = masked_nll(jnp.asarray(logp), jnp.asarray(mask))
    assert np.isclose(float(total), -(logp * mask).sum(), rtol=1e-6)
    assert float(count) == mask.sum()


@pytest.mark.parametrize("alpha, beta, margin, window",
                         [(0.2, 1.0, 0.0, 0), (0.0, 2.0, 0.1, 0), (1.0, 0.5, -0.3, 0), (0.2, 1.0, 0.0, 3)])
def test_contrastive_matches_numpy(alpha, beta, margin, window):
    lc, lr = -RS.rand(5, 12).astype(np.float32) * 3, -RS.rand(5, 12).astype(np.float32) * 3
    mc, mr = (RS.rand(5, 12) > 0.3).astype(np.float32), (RS.rand(5, 12) > 0.5).astype(np.float32)
    mc[:, 0] = mr[:, 0] = 1
    valid = np.array([1, 1, 0, 1, 1], np.float32)
    total, count, metrics = contrastive_loss(jnp.asarray(lc), jnp.asarray(mc), jnp.asarray(lr), jnp.asarray(mr),
                                             jnp.asarray(valid), ContrastiveParams(alpha, beta, margin, window))
    expect = 0.0
    for b in range(5):
        if not valid[b]:
            continue
        # the window keeps the first `window` scored positions of each row (all with window 0)
        wc, wr = (np.flatnonzero(m[b])[:window or None] for m in (mc, mr))
        pc = (lc[b] * mc[b]).sum() / mc[b].sum()
        pc_window = lc[b][wc].mean()
        pr = lr[b][wr].mean()
        expect += -_np_log_sigmoid(beta * (pc_window - pr - margin)) - alpha * pc
    assert np.isclose(float(total), expect, rtol=1e-5)
    assert float(count) == 4


@pytest.mark.parametrize("window", [0, 3])
def test_contrastive_anchored_to_a_reference_gap_matches_numpy(window):
    lc, lr = -RS.rand(4, 10).astype(np.float32) * 3, -RS.rand(4, 10).astype(np.float32) * 3
    mc, mr = (RS.rand(4, 10) > 0.3).astype(np.float32), (RS.rand(4, 10) > 0.5).astype(np.float32)
    mc[:, 0] = mr[:, 0] = 1
    valid = np.ones(4, np.float32)
    ref_gap = RS.randn(4).astype(np.float32)
    p = ContrastiveParams(alpha=0.2, beta=2.0, margin=0.1, window=window, reference=True)
    total, _, metrics = contrastive_loss(jnp.asarray(lc), jnp.asarray(mc), jnp.asarray(lr), jnp.asarray(mr),
                                         jnp.asarray(valid), p, jnp.asarray(ref_gap))
    expect = gaps = 0.0
    for b in range(4):
        wc, wr = (np.flatnonzero(m[b])[:window or None] for m in (mc, mr))
        gap = lc[b][wc].mean() - lr[b][wr].mean() - ref_gap[b]
        expect += -_np_log_sigmoid(2.0 * (gap - 0.1)) - 0.2 * (lc[b] * mc[b]).sum() / mc[b].sum()
        gaps += gap
    assert np.isclose(float(total), expect, rtol=1e-5)
    assert np.isclose(float(metrics["pair_gap"][0]), gaps, rtol=1e-5, atol=1e-6)


def _np_grpo(logp, old, ref, adv, pmask, rmask, p: GRPOParams):
    if p.autocoa_compat:
        a = adv[:, None] * pmask
        mask = rmask
    else:
        a = np.broadcast_to(adv[:, None], logp.shape)
        mask = pmask
    ratio = np.exp(logp - old)
    pg = np.maximum(-a * ratio, -a * np.clip(ratio, 1 - p.clip_low, 1 + p.clip_high))
    if p.kl_estimator == "k1":
        kl = logp - ref
    elif p.kl_estimator == "k2":
        kl = 0.5 * (logp - ref) ** 2
    else:
        kl = np.clip(np.exp(ref - logp) - (ref - logp) - 1, -10, 10)
    tok = pg + (0 if p.kl_in_reward else p.kl_coef) * kl
    if p.aggregation == "token_mean":
        return (tok * mask).sum(), mask.sum()
    seq = (tok * mask).sum(-1)
    if p.aggregation == "seq_mean_token_mean":
        seq = seq / np.maximum(mask.sum(-1), 1)
    has = mask.sum(-1) > 0
    return seq[has].sum(), has.sum()


@pytest.mark.parametrize("p", [
    GRPOParams(),
    GRPOParams(kl_estimator="k1", aggregation="seq_mean_token_mean", kl_coef=0.1),
    GRPOParams(kl_estimator="k2", aggregation="seq_mean_token_sum", clip_high=0.28),
    GRPOParams(autocoa_compat=True, kl_coef=0.05),
    GRPOParams(kl_in_reward=True, kl_coef=0.5),
], ids=["default", "k1_seqmean", "k2_seqsum_cliphigher", "autocoa_compat", "kl_in_reward"])
def test_grpo_loss_matches_numpy(p):
    n, t = 6, 10
    logp = -RS.rand(n, t).astype(np.float32) * 2
    old = logp + RS.randn(n, t).astype(np.float32) * 0.3
    ref = logp + RS.randn(n, t).astype(np.float32) * 0.3
    adv = RS.randn(n).astype(np.float32)
    rmask = (RS.rand(n, t) > 0.2).astype(np.float32)
    rmask[2] = 0  # an empty row
    pmask = rmask * (RS.rand(n, t) > 0.3)
    total, count, _ = grpo_loss(*(jnp.asarray(x) for x in (logp, old, ref, adv, pmask, rmask)), p)
    e_total, e_count = _np_grpo(logp, old, ref, adv, pmask, rmask, p)
    assert np.isclose(float(total), e_total, rtol=1e-4, atol=1e-5)
    assert float(count) == e_count


def test_group_advantages_match_numpy():
    rewards = np.array([1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 1], np.float32)
    adv, degenerate = group_advantages(rewards, 5)
    for g in range(3):
        r = rewards[g * 5:(g + 1) * 5]
        expect = (r - r.mean()) / (np.std(r, ddof=1) + 1e-6)
        np.testing.assert_allclose(adv[g * 5:(g + 1) * 5], expect, rtol=1e-5, atol=1e-6)
    assert degenerate.tolist() == [False, True, False]
    assert np.all(adv[5:10] == 0)
    adv_nostd, _ = group_advantages(rewards, 5, normalize_std=False)
    np.testing.assert_allclose(adv_nostd[:5], rewards[:5] - rewards[:5].mean(), atol=1e-6)


def test_pick_groups_takes_each_slots_first_informative_candidate():
    from coa_jax.train.grpo import pick_groups

    g, k = 3, 3
    # 2 slots x 3 candidates x G=3; slot 0: candidates 0, 1 degenerate, 2 informative; slot 1: all degenerate
    groups = [[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 0, 0], [0, 0, 0], [1, 1, 1]]
    rewards = np.array(groups, np.float32).reshape(-1)
    assert pick_groups(rewards, g, k).tolist() == [2, 3]
    # independent NumPy reference on random rewards: slot j takes the first differing candidate, else j*k
    rewards = (RS.rand(8 * k * g) > 0.8).astype(np.float32)
    r = rewards.reshape(8, k, g)
    expect = [j * k + next((c for c in range(k) if len(set(r[j, c])) > 1), 0) for j in range(8)]
    assert pick_groups(rewards, g, k).tolist() == expect
    # each slot's choice depends only on its own candidates (a pod's processes hold whole slots)
    halves = [pick_groups(rewards[h * 4 * k * g:(h + 1) * 4 * k * g], g, k) + h * 4 * k for h in range(2)]
    assert np.concatenate(halves).tolist() == expect
    assert pick_groups(rewards, g, 1).tolist() == list(range(8 * k))  # k=1: every group, in order


def test_sft1_scores_observation_tokens_only_when_asked():
    from coa_jax.data.collate import PairBatch, SFTBatch
    from coa_jax.data.provenance import Provenance
    from coa_jax.train.sft import ContrastiveBody

    P, M, O, A = (int(Provenance.PROMPT), int(Provenance.POLICY), int(Provenance.OBSERVATION),
                  int(Provenance.ANSWER))
    chosen_labels = np.array([[P, P, M, M, O, O, O, M, A, 0]], np.int8)
    rejected_labels = np.array([[P, P, M, M, A, A, 0, 0, 0, 0]], np.int8)

    def half(labels):
        return SFTBatch(np.arange(10, dtype=np.int32)[None], np.arange(10, dtype=np.int32)[None],
                        (labels > 0).astype(np.int32), labels)

    batch = PairBatch(half(chosen_labels), half(rejected_labels), np.ones((1, 1), bool))
    masks = {}
    for observations in (True, False):
        body = ContrastiveBody(None, None, None, params=ContrastiveParams(observations=observations), optimizer=None,
                               state_shardings=None, micro_batches=1)
        masks[observations] = body.arrays(batch)
    assert masks[True]["c_mask"][0].tolist() == [0, 0, 1, 1, 1, 1, 1, 1, 1, 0]
    assert masks[False]["c_mask"][0].tolist() == [0, 0, 1, 1, 0, 0, 0, 1, 1, 0]
    assert masks[True]["r_mask"].tolist() == masks[False]["r_mask"].tolist() == [[0, 0, 1, 1, 1, 1, 0, 0, 0, 0]]
