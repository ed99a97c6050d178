"""Sharded (2x2x2 mesh on 8 fake devices) equals single device; state is created in its shardings."""

import numpy as np

import jax
import jax.numpy as jnp

from coa_jax.models.params import forward, init_params, param_shardings
from coa_jax.rollout.sampler import Sampler, SamplerShape
from coa_jax.rollout.sampling import SamplingParams
from model_fixtures import TINY, mesh_sharder, single_device_sharder, tiny_params


def test_params_are_created_sharded_over_the_mesh():
    sharder = mesh_sharder(2, 2, 2)
    params = init_params(TINY, sharder, jax.random.key(0))
    q = params["layers"]["attn"]["q_kernel"]  # [L, E, H, D]: embed on fsdp, heads on tensor
    assert q.sharding.spec == jax.sharding.PartitionSpec(None, "fsdp", "tensor", None)
    assert len(q.addressable_shards) == 8 and q.addressable_shards[0].data.shape == (2, 32, 2, 16)
    shardings = param_shardings(TINY, sharder)
    for leaf, want in zip(jax.tree.leaves(params), jax.tree.leaves(shardings)):
        assert leaf.sharding.is_equivalent_to(want, leaf.ndim)


def test_sharded_forward_equals_single_device():
    sharder = mesh_sharder(2, 2, 2)
    single = tiny_params(seed=3)
    sharded = jax.device_put(single, param_shardings(TINY, sharder))
    tokens = jnp.asarray(np.random.RandomState(0).randint(0, TINY.vocab_size, (4, 16)))
    positions = jnp.broadcast_to(jnp.arange(16), (4, 16))
    ref, _ = forward(TINY, single, tokens, positions)
    fn = jax.jit(lambda p, t, pos: forward(TINY, p, t, pos, sharder=sharder)[0],
                 in_shardings=(param_shardings(TINY, sharder), sharder.sharding(("batch", "length"), (4, 16)),
                               sharder.sharding(("batch", "length"), (4, 16))))
    out = fn(sharded, tokens, positions)
    assert out.sharding.spec[0] == ("data", "fsdp")
    np.testing.assert_allclose(np.asarray(out), np.asarray(ref), atol=1e-5)


def test_sharded_decode_equals_single_device():
    single_sharder = single_device_sharder("sampling")
    sharder = mesh_sharder(2, 2, 2, role="sampling")
    params = tiny_params(seed=4, role="sampling")
    shape = SamplerShape(batch=4, cache_len=32, decode_steps=8)
    prompts = np.random.RandomState(1).randint(0, TINY.vocab_size, (4, 8)).astype(np.int32)
    lengths = np.array([8, 5, 7, 3])
    results = []
    for sh in (single_sharder, sharder):
        sampler = Sampler(TINY, sh, shape, SamplingParams(temperature=0.8, top_k=20))
        p = jax.device_put(params, sampler.param_shardings)
        state = sampler.append(p, sampler.init_state(), prompts, lengths)
        state, out = sampler.decode(p, state, np.ones(4, bool), np.full(4, 8), jax.random.key(7))
        results.append((np.asarray(out.tokens_BxN), np.asarray(out.logprobs_BxN), np.asarray(state.logits_BxV)))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_allclose(results[0][1], results[1][1], atol=1e-5)
    np.testing.assert_allclose(results[0][2], results[1][2], atol=1e-5)
