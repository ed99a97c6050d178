"""The compiled CPU decode program reads each layer's slice of the carried KV cache in place.

A YNNPACK reduce fusion needs materialised inputs, so with XLA:CPU's default fusions every decode
step first copied each layer's [B, S, K, D] K and V slices out of the [L, B, S, K, D] cache (at
batch 32 the step ran ~2x slower); the sampler compiles its decode loop without them.
"""

import re

import jax
import numpy as np
import pytest

from coa_jax.config.schema import MeshConfig
from coa_jax.models.model_config import ModelConfig
from coa_jax.models.params import init_params
from coa_jax.rollout import sampler as sampler_module
from coa_jax.rollout.sampler import Sampler, SamplerShape
from coa_jax.rollout.sampling import SamplingParams
from coa_jax.sharding.mesh import make_mesh
from coa_jax.sharding.rules import SAMPLING_RULES, Sharder

MODEL = ModelConfig(vocab_size=512, hidden_size=128, intermediate_size=384, num_layers=2, num_heads=4,
                    num_kv_heads=2, max_position_embeddings=512)
BATCH, CACHE = 32, 256


def _slice_copies() -> int:
    """Materialised copies of one layer's cache slice in the compiled decode program (a fusion or
    copy producing it; a dynamic-slice inside a fused computation reads in place)."""
    sharder = Sharder(make_mesh(MeshConfig(data=1), jax.devices()[:1]), SAMPLING_RULES)
    sampler = Sampler(MODEL, sharder, SamplerShape(BATCH, CACHE, 4), SamplingParams(temperature=0.0))
    params = sampler.prepare(init_params(MODEL, sharder, jax.random.key(0)))
    sampler.decode(params, sampler.init_state(), np.ones((BATCH,), bool), np.ones((BATCH,), np.int32))
    program = sampler._decode_fns[CACHE].lower(params, sampler.init_state(), jax.random.key(0)).compile()
    k, d = MODEL.num_kv_heads, MODEL.resolved_head_dim
    shape = re.compile(rf"= f32\[(1,)?{BATCH},{CACHE},{k},{d}\]\S* (fusion|copy)\(")
    return len(shape.findall(program.as_text()))


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA:CPU fusion choices")
def test_decode_reads_the_cache_in_place(monkeypatch):
    assert _slice_copies() == 0
    # the check can fail: with YNN reduce fusions allowed, the slices are copied out again
    monkeypatch.setattr(sampler_module, "DECODE_CPU_OPTIONS", {
        "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"})
    assert _slice_copies() >= 2  # K and V (in the layer loop's body)
