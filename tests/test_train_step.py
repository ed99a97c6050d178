"""The jitted train step: (sum, count) accumulation, NaN guard, freezing, masked tokens' zero gradient."""

import numpy as np
import pytest
import optax

import jax
import jax.numpy as jnp

from coa_jax.models.params import param_shardings
from coa_jax.train.logprobs import token_logprobs
from coa_jax.train.losses import masked_nll
from coa_jax.train.optimizer import OptimConfig, make_optimizer
from coa_jax.train.step import init_train_state, make_train_step
from model_fixtures import TINY, mesh_sharder, tiny_params


def _sft_loss(params, mb):
    logp, _ = token_logprobs(TINY, params, mb["tokens"], mb["positions"], mb["segments"])
    return masked_nll(logp, mb["mask"])


def _batch(rs, rows, t, fill):
    tokens = rs.randint(0, TINY.vocab_size, (rows, t)).astype(np.int32)
    segments = np.zeros((rows, t), np.int32)
    mask = np.zeros((rows, t), np.float32)
    for r, n in enumerate(fill):
        segments[r, :n] = 1
        mask[r, 1:n] = 1.0
    positions = np.broadcast_to(np.arange(t), (rows, t)).astype(np.int32)
    return {"tokens": tokens, "positions": positions, "segments": segments, "mask": mask}


def _run(params, batch, accum, cfg=OptimConfig(lr=1e-2, grad_clip=0.0), sharder=None, opt=None):
    sharder = sharder or mesh_sharder(2, 2, 2)
    shardings = param_shardings(TINY, sharder)
    params = jax.device_put(jax.tree.map(np.asarray, params), shardings)  # fresh buffers: the step donates them
    opt = opt or make_optimizer(cfg, 10, params)
    state = init_train_state(params, opt, shardings)
    state_sh = jax.tree.map(lambda x: x.sharding, state)
    mb = {k: v.reshape((accum, v.shape[0] // accum) + v.shape[1:]) for k, v in batch.items()}
    batch_sh = {k: sharder.sharding((None, "batch", "length"), v.shape) for k, v in mb.items()}
    step = make_train_step(_sft_loss, opt, state_sh, batch_sh)
    return step(state, mb)


def test_accumulation_over_unequal_microbatches_equals_full_batch():
    rs = np.random.RandomState(0)
    # microbatch 1 holds far more tokens than microbatch 2: a mean of means would weight them equally
    batch = _batch(rs, 8, 16, [16, 16, 15, 14, 3, 2, 2, 4])
    params = tiny_params(seed=1)
    # plain SGD: the update is linear in the gradient, so equal gradients give equal params (Adam's
    # first step is ~lr * sign(g), which turns float-rounding noise on near-zero gradients into lr)
    full_state, full_m = _run(params, batch, accum=1, opt=optax.sgd(1.0))
    acc_state, acc_m = _run(params, batch, accum=2, opt=optax.sgd(1.0))
    assert np.isclose(float(full_m["loss"]), float(acc_m["loss"]), rtol=1e-6)
    assert float(full_m["count"]) == float(acc_m["count"]) == batch["mask"].sum()
    for a, b in zip(jax.tree.leaves(full_state.params), jax.tree.leaves(acc_state.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
    changed = any(not np.allclose(np.asarray(a), np.asarray(b))
                  for a, b in zip(jax.tree.leaves(full_state.params), jax.tree.leaves(params)))
    assert changed and int(acc_state.step) == 1


def test_masked_tokens_get_exactly_zero_gradient():
    """Masked positions get zero gradient, and masking equals dropping their loss terms by hand."""
    rs = np.random.RandomState(1)
    batch = _batch(rs, 2, 12, [12, 12])
    batch["mask"][:, 4:8] = 0.0  # an "observation" span
    params = tiny_params(seed=2)

    def loss(p, b):
        logp, _ = token_logprobs(TINY, p, jnp.asarray(b["tokens"]), jnp.asarray(b["positions"]),
                                 jnp.asarray(b["segments"]))
        return masked_nll(logp, jnp.asarray(b["mask"]))[0]

    g_logp = jax.grad(lambda lp: masked_nll(lp, jnp.asarray(batch["mask"]))[0])(jnp.zeros((2, 12)))
    assert np.all(np.asarray(g_logp)[:, 4:8] == 0.0) and np.all(np.asarray(g_logp)[:, 1:4] != 0.0)
    # and end to end: masking the span equals zeroing those tokens' loss terms by hand
    g_masked = jax.grad(loss)(params, batch)
    full = dict(batch, mask=np.where(np.arange(12) >= 1, 1.0, 0.0)[None].repeat(2, 0).astype(np.float32))

    def manual(p):
        logp, _ = token_logprobs(TINY, p, jnp.asarray(full["tokens"]), jnp.asarray(full["positions"]),
                                 jnp.asarray(full["segments"]))
        keep = jnp.asarray(batch["mask"])
        return -jnp.sum(jnp.where(keep > 0, logp, jax.lax.stop_gradient(logp)) * full["mask"])

    g_manual = jax.grad(manual)(params)
    for a, b in zip(jax.tree.leaves(g_masked), jax.tree.leaves(g_manual)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)


def test_non_finite_loss_skips_the_update():
    rs = np.random.RandomState(2)
    batch = _batch(rs, 4, 8, [8, 8, 8, 8])
    batch["mask"][0, 3] = np.nan
    params = tiny_params(seed=3)
    state, metrics = _run(params, batch, accum=1)
    assert int(metrics["skipped"]) == 1 and int(state.step) == 0
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_frozen_parameters_do_not_move():
    rs = np.random.RandomState(3)
    batch = _batch(rs, 4, 8, [8, 8, 8, 8])
    params = tiny_params(seed=4)
    state, _ = _run(params, batch, accum=1, cfg=OptimConfig(lr=1e-2, freeze=("embedding", "layers/mlp/.*")))
    np.testing.assert_array_equal(np.asarray(state.params["embedding"]), np.asarray(params["embedding"]))
    np.testing.assert_array_equal(np.asarray(state.params["layers"]["mlp"]["up_kernel"]),
                                  np.asarray(params["layers"]["mlp"]["up_kernel"]))
    assert not np.array_equal(np.asarray(state.params["layers"]["attn"]["q_kernel"]),
                              np.asarray(params["layers"]["attn"]["q_kernel"]))


def test_a_freeze_pattern_that_matches_nothing_is_an_error():
    from coa_jax.train.optimizer import make_optimizer

    params = tiny_params(seed=4)
    with pytest.raises(ValueError, match=r"\['embed'\] match no parameter"):
        make_optimizer(OptimConfig(freeze=("embed",)), 10, params)
    make_optimizer(OptimConfig(freeze=(".*embed.*",)), 10, params)  # a regex that does match


def test_microbatched_logprobs_equal_the_whole_batch_pass():
    """GRPO's old/reference log-probs one microbatch at a time (bounded temporaries) give the
    numbers of one pass over all rows, on a sharded mesh (data 2 x fsdp 2 x tensor 2)."""
    from coa_jax.train.logprobs import microbatched_logprobs

    sharder = mesh_sharder(2, 2, 2)
    params = jax.device_put(tiny_params(), param_shardings(TINY, sharder))
    rs = np.random.RandomState(7)
    rows, t, micro = 8, 24, 4
    tokens = rs.randint(0, TINY.vocab_size, (rows, t)).astype(np.int32)
    positions = np.tile(np.arange(t, dtype=np.int32), (rows, 1))
    segments = (np.arange(t)[None, :] < rs.randint(5, t + 1, (rows, 1))).astype(np.int32)
    whole, _ = token_logprobs(TINY, params, tokens, positions, segments, None, 0.7)
    fn = microbatched_logprobs(TINY, sharder, 0.7, micro, rows, t, param_shardings(TINY, sharder))
    split = [a.reshape(micro, rows // micro, t) for a in (tokens, positions, segments)]
    got = np.asarray(fn(params, *split)).reshape(rows, t)
    np.testing.assert_allclose(got, np.asarray(whole), atol=1e-5)
