"""Logits and greedy-generation parity with transformers (PyTorch CPU) on the same weights."""

import numpy as np
import pytest
import torch

import jax
import jax.numpy as jnp

from coa_jax.config.schema import MeshConfig
from coa_jax.models.loading import load_model
from coa_jax.models.params import forward
from coa_jax.rollout.generate import generate
from coa_jax.rollout.sampling import SamplingParams
from coa_jax.sharding.mesh import make_mesh
from coa_jax.sharding.rules import SAMPLING_RULES, TRAINING_RULES, Sharder
from hf_fixtures import TINY_VARIANTS, make_tiny_hf


def _single_device(rules):
    return Sharder(make_mesh(MeshConfig(data=1), jax.devices()[:1]), rules)


@pytest.fixture(scope="module", params=TINY_VARIANTS, ids=[v[0] for v in TINY_VARIANTS])
def tiny(request, tmp_path_factory):
    name, family, overrides = request.param
    directory = tmp_path_factory.mktemp(name)
    hf_model = make_tiny_hf(directory, family, **overrides)
    cfg, params = load_model(directory, _single_device(TRAINING_RULES))
    return hf_model, cfg, params


def test_logits_match_transformers(tiny):
    hf_model, cfg, params = tiny
    rng = np.random.RandomState(0)
    tokens = rng.randint(0, cfg.vocab_size, (3, 24))
    with torch.no_grad():
        ref = hf_model(torch.tensor(tokens)).logits.numpy()
    ours, _ = forward(cfg, params, jnp.asarray(tokens), jnp.broadcast_to(jnp.arange(24), (3, 24)))
    assert np.abs(np.asarray(ours) - ref).max() <= 1e-4


def test_padded_batch_with_row_positions_matches_unpadded(tiny):
    """A right-padded row (segment 0 = pad) gives the same logits as the row alone."""
    _, cfg, params = tiny
    rng = np.random.RandomState(1)
    row = rng.randint(0, cfg.vocab_size, (1, 10))
    alone, _ = forward(cfg, params, jnp.asarray(row), jnp.arange(10)[None])
    padded = np.concatenate([row, np.zeros((1, 6), row.dtype)], axis=1)
    seg = np.array([[1] * 10 + [0] * 6])
    pos = np.array([list(range(10)) + [0] * 6])
    out, _ = forward(cfg, params, jnp.asarray(padded), jnp.asarray(pos), segment_ids_BxT=jnp.asarray(seg))
    np.testing.assert_allclose(np.asarray(out)[:, :10], np.asarray(alone), atol=1e-5)


def test_greedy_generate_matches_transformers(tiny):
    hf_model, cfg, params = tiny
    rng = np.random.RandomState(2)
    prompts = [rng.randint(0, cfg.vocab_size, n).tolist() for n in (5, 9)]
    gens = generate(cfg, params, _single_device(SAMPLING_RULES), prompts, max_new_tokens=12,
                    sampling=SamplingParams(), rng=jax.random.key(0))
    for prompt, gen in zip(prompts, gens):
        with torch.no_grad():
            ref = hf_model.generate(torch.tensor([prompt]), max_new_tokens=12, do_sample=False, eos_token_id=None,
                                    pad_token_id=0, attention_mask=torch.ones(1, len(prompt), dtype=torch.long))
        assert gen.output_ids == ref[0, len(prompt):].tolist()
