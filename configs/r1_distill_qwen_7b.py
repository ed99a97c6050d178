"""The paper's run: DeepSeek-R1-Distill-Qwen-7B through SFT-1/2/3 and GRPO RL-1 -> RL-2 (SPEC 2).

Run:    python -m coa_jax sft --stage 1 --config configs/r1_distill_qwen_7b.py:gpu8 --data DIR --out runs/sft1
        (DIR: the reference's CoT_data.jsonl, CoA_data.jsonl, CoT+A_data.json; then --stage 2 --init runs/sft1 ...)
Fit:    python launch/aot_check.py --config configs/r1_distill_qwen_7b.py:v5p-16 --topology v5p-16
RL:     python -m coa_jax rl --env schedule --config configs/r1_distill_qwen_7b.py:gpu8 --init runs/sft3 --out runs/rl
Pod:    launch/tpu_pod.sh --name coa --zone ZONE --type v5p-16 up -- sft --stage 1 \
            --config configs/r1_distill_qwen_7b.py:v5p-16 ...
Tiny:   --config configs/r1_distill_qwen_7b.py:tiny   (the same recipe shrunk to the embedded world, CPU)

Weights: `init` is a Hugging Face directory (`huggingface-cli download deepseek-ai/DeepSeek-R1-Distill-Qwen-7B
--local-dir checkpoints/DeepSeek-R1-Distill-Qwen-7B`); its config.json wins over `model` below, which
only describes it for the AOT check. Retrieval: a FlashRAG-compatible server at `env.url` (the
reference's wiki index, or `python -m coa_jax serve-retrieval --corpus corpus.jsonl --port 8000`).

Variants are meshes: v5p-16 (8 chips, the default), v4-32 (16 chips, 32 GiB each: tensor-parallel
so sampling weights split 4 ways), gpu8 (one host of 8 H100/A100-80GB, 2-way tensor-parallel).
`launch/aot_check.py` prints what each variant keeps resident per device and what each step needs.
SFT batch sizes are not given by the paper: 32 packed rows of 8,192 tokens (SFT-2/3) and 32 pairs
(SFT-1) per step are this config's choice.
"""

import dataclasses

from coa_jax.config import Config, ConfigError, MeshConfig, SamplingConfig
from coa_jax.config.schema import EnvConfig, RLConfig, SFTConfig, WorldConfig
from coa_jax.models.model_config import ModelConfig
from coa_jax.rollout.config import RolloutConfig
from coa_jax.rollout.evaluation import EvalSettings
from coa_jax.train.grpo_loss import GRPOParams
from coa_jax.train.loop import LoopConfig
from coa_jax.train.losses import ContrastiveParams
from coa_jax.train.optimizer import OptimConfig

VARIANTS = (None, "v5p-16", "v4-32", "gpu8", "tiny")

MODEL = ModelConfig(family="qwen2", vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_layers=28,
                    num_heads=28, num_kv_heads=4, max_position_embeddings=131072, rope_theta=10000.0,
                    rms_norm_eps=1e-6, qkv_bias=True, tie_embeddings=False,
                    param_dtype="float32", dtype="bfloat16", remat="full")  # bf16 compute, f32 master weights

MESHES = {  # variant -> (mesh, SFT / RL microbatches, rollout slots)
    "v5p-16": (MeshConfig(data=1, fsdp=8, tensor=1), 4, 30, 240),
    "v4-32": (MeshConfig(data=1, fsdp=4, tensor=4), 4, 30, 240),
    "gpu8": (MeshConfig(data=1, fsdp=4, tensor=2), 4, 30, 240),  # 2-way tensor halves the sampler's weights
}


def get_config(variant: str | None = None) -> Config:
    if variant == "tiny":
        return tiny_recipe("r1-distill-qwen-7b-tiny")
    if variant not in VARIANTS:
        raise ConfigError([("variant", f"unknown variant {variant!r}; choose from {VARIANTS}")])
    return paper_recipe("r1-distill-qwen-7b", MODEL, "checkpoints/DeepSeek-R1-Distill-Qwen-7B", variant or "v5p-16")


def paper_recipe(name: str, model: ModelConfig, init: str, mesh_variant: str, meshes: dict | None = None) -> Config:
    """SPEC 2's hyperparameters around `model` (the 1.5B and Qwen2.5 configs reuse this)."""
    mesh, sft_micro, rl_micro, slots = {**MESHES, **(meshes or {})}[mesh_variant]
    loop = LoopConfig(save_every=200, keep_checkpoints=2)
    sft = SFTConfig(epochs=2.0, batch_rows=32, micro_batches=sft_micro, max_len=8192, loop=loop,
                    optim=OptimConfig(lr=5e-5, warmup_steps=10, weight_decay=0.0))
    return Config(
        name=f"{name}-{mesh_variant}", seed=0, model=model, init=init, mesh=mesh,
        sampling=SamplingConfig(temperature=0.6, top_p=0.95, max_new_tokens=8192),
        world=WorldConfig(prompt_style="reference"),
        env=EnvConfig(search="http", url="http://127.0.0.1:8000", topk=3, max_obs_tokens=512, timeout_s=30.0,
                      retries=3),
        rollout=RolloutConfig(batch_slots=slots, max_prompt_tokens=1024, max_response_tokens=8192, max_actions=10,
                              answer_reserve=64, temperature=0.6, segment_steps=64, halts_per_segment=8),
        reasoner=sft,  # unused for a real reasoning model (no reasoner stage)
        sft1=dataclasses.replace(sft, max_len=6144, optim=OptimConfig(lr=5e-6, warmup_steps=10),
                                 contrastive=ContrastiveParams(alpha=0.2)),
        sft2=sft,
        sft3=sft,
        rl=RLConfig(steps=96, prompts_per_step=48, group_size=5, micro_batches=rl_micro, env="schedule",
                    sim_fraction=5 / 6, reward="autocoa", grpo=GRPOParams(kl_coef=0.001, kl_estimator="low_var_kl"),
                    optim=OptimConfig(lr=7e-7, decay="constant"), loop=LoopConfig(save_every=16, keep_checkpoints=2)),
        eval=EvalSettings(batch_slots=64, max_response_tokens=8192, max_actions=10, answer_reserve=64),
    )


def tiny_recipe(name: str) -> Config:
    """The recipe's structure at CPU scale on the embedded world (random init, BM25 in process)."""
    model = ModelConfig(family="qwen2", vocab_size=2048, hidden_size=64, intermediate_size=128, num_layers=2,
                        num_heads=4, num_kv_heads=2, qkv_bias=True, tie_embeddings=False)
    sft = SFTConfig(steps=4, batch_rows=8, max_len=256, loop=LoopConfig(save_every=100, keep_checkpoints=1),
                    optim=OptimConfig(lr=1e-3, warmup_steps=1))
    return Config(
        name=name, model=model, mesh=MeshConfig(data=-1), sampling=SamplingConfig(temperature=0.6, max_new_tokens=64),
        world=WorldConfig(size="tiny"), env=EnvConfig(search="bm25", topk=3, max_obs_tokens=128),
        rollout=RolloutConfig(batch_slots=8, max_prompt_tokens=128, max_response_tokens=256, max_actions=3,
                              temperature=0.6, segment_steps=32),
        reasoner=sft, sft1=dataclasses.replace(sft, optim=OptimConfig(lr=5e-4)), sft2=sft, sft3=sft,
        rl=RLConfig(steps=2, prompts_per_step=2, group_size=4, grpo=GRPOParams(kl_coef=0.001),
                    optim=OptimConfig(lr=2e-5, decay="constant"), loop=LoopConfig(save_every=100, keep_checkpoints=1)),
        eval=EvalSettings(batch_slots=8, max_response_tokens=256, max_actions=3, answer_reserve=32),
    )
