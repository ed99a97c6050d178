"""Export to a Hugging Face directory: transformers loads it and gives the same logits; import round-trips."""

import json

import numpy as np
import pytest
import torch
import transformers

import jax.numpy as jnp

from coa_jax.models.hf_export import export_hf
from coa_jax.models.loading import load_model
from coa_jax.models.model_config import ModelConfig, RopeScaling
from coa_jax.models.params import forward
from coa_jax.models.tensor_sources import CheckpointError
from model_fixtures import TINY, mesh_sharder, single_device_sharder, tiny_params

LLAMA = ModelConfig(family="llama", vocab_size=128, hidden_size=64, intermediate_size=96, num_layers=2, num_heads=4,
                    num_kv_heads=1, head_dim=32, qkv_bias=False, tie_embeddings=True, init_std=0.1,
                    rope_scaling=RopeScaling("llama3", 4.0, 1.0, 4.0, 64))


@pytest.mark.parametrize("cfg", [TINY, LLAMA], ids=["qwen2", "llama3"])
def test_export_loads_in_transformers_with_same_logits(cfg, tmp_path):
    params = tiny_params(cfg, seed=5)
    # force several shards so the index file path is exercised
    export_hf(params, cfg, tmp_path, max_shard_bytes=40_000)
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    model = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path), torch_dtype=torch.float32).eval()
    tokens = np.random.RandomState(0).randint(0, cfg.vocab_size, (2, 20))
    with torch.no_grad():
        ref = model(torch.tensor(tokens)).logits.numpy()
    ours, _ = forward(cfg, params, jnp.asarray(tokens), jnp.broadcast_to(jnp.arange(20), (2, 20)))
    assert np.abs(np.asarray(ours) - ref).max() <= 1e-4


def test_export_then_import_into_a_mesh_round_trips(tmp_path):
    params = tiny_params(seed=6)
    export_hf(params, TINY, tmp_path)
    cfg, loaded = load_model(tmp_path, mesh_sharder(2, 2, 2))
    assert cfg.family == TINY.family and cfg.num_kv_heads == TINY.num_kv_heads
    q = loaded["layers"]["attn"]["q_kernel"]
    assert len(q.sharding.device_set) == 8
    np.testing.assert_array_equal(np.asarray(q), np.asarray(params["layers"]["attn"]["q_kernel"]))


def test_bf16_export_and_import(tmp_path):
    params = tiny_params(seed=7)
    export_hf(params, TINY, tmp_path, dtype="bfloat16")
    assert json.loads((tmp_path / "config.json").read_text())["torch_dtype"] == "bfloat16"
    cfg, loaded = load_model(tmp_path, single_device_sharder(), param_dtype="bfloat16", dtype="bfloat16")
    assert loaded["embedding"].dtype == jnp.bfloat16
    diff = np.abs(np.asarray(loaded["embedding"], np.float32) - np.asarray(params["embedding"]))
    assert diff.max() <= 2 ** -8 * np.abs(np.asarray(params["embedding"])).max()


def test_import_refuses_pickle_only_directories(tmp_path):
    params = tiny_params()
    export_hf(params, TINY, tmp_path)
    (tmp_path / "model.safetensors").unlink()
    (tmp_path / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(CheckpointError, match="pickle"):
        load_model(tmp_path, single_device_sharder())


def test_import_names_the_mismatched_tensor(tmp_path):
    params = tiny_params()
    export_hf(params, TINY, tmp_path)
    cfg_path = tmp_path / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["intermediate_size"] = 64
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="gate_proj"):
        load_model(tmp_path, single_device_sharder())
