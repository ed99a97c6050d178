"""The embedded default: the whole AutoCoA recipe on the synthetic world, on a CPU, offline.

Run:    python -m coa_jax pipeline                      (this config; ~15-20 min on 2 CPU cores)
Quick:  python -m coa_jax pipeline --quick              (= --config configs/default.py:quick, ~5 min)
Tiny:   --config configs/default.py:tiny                (seconds per stage; what the tests use)
"""

import dataclasses

from coa_jax.config import Config, ConfigError, MeshConfig, SamplingConfig
from coa_jax.config.schema import EnvConfig, RLConfig, SFTConfig, WorldConfig
from coa_jax.models.model_config import ModelConfig
from coa_jax.rollout.config import RolloutConfig
from coa_jax.rollout.evaluation import EvalSettings
from coa_jax.train.copy_warmup import CopyWarmupConfig
from coa_jax.train.grpo_loss import GRPOParams
from coa_jax.train.losses import ContrastiveParams
from coa_jax.train.loop import LoopConfig
from coa_jax.train.optimizer import OptimConfig

VARIANTS = (None, "quick", "tiny")


def get_config(variant: str | None = None) -> Config:
    # A Qwen2-architecture model small enough to train on 2 CPU cores in minutes (2 layers: two
    # are enough to copy a name from the question or a search result, and halve the step time of
    # four); the vocabulary is resized to the world tokenizer's at random init.
    model = ModelConfig(family="qwen2", vocab_size=2048, hidden_size=128, intermediate_size=384, num_layers=2,
                        num_heads=4, num_kv_heads=2, max_position_embeddings=2048, rope_theta=10000.0,
                        qkv_bias=True, tie_embeddings=True, init_std=0.02)
    loop = LoopConfig(save_every=100, keep_checkpoints=1)
    # Rows of 768 tokens: a trajectory with three searches (three results each) runs ~600, and a
    # row cut short loses the part that reads the results (the stage logs what max_len cuts).
    # 8 rows split over hosts of 1, 2, 4 or 8 devices.
    sft = SFTConfig(epochs=2.0, batch_rows=8, max_len=768, loop=loop)
    cfg = Config(
        name="default", seed=0, model=model, mesh=MeshConfig(data=-1),
        sampling=SamplingConfig(temperature=0.6, max_new_tokens=256),
        world=WorldConfig(size="small", prompt_style="compact"),
        env=EnvConfig(search="bm25", topk=3, max_obs_tokens=256),
        rollout=RolloutConfig(batch_slots=16, max_prompt_tokens=128, max_response_tokens=768, max_actions=4,
                              temperature=0.6),
        # The base reasoner learns from random weights: language, the popular facts, CoT, writing a
        # query and reading results (a real base model's skills), so it gets most of the steps.
        # It starts with a copy warm-up (short rows of random tokens, repeated: coa_jax/train/copy_warmup.py):
        # without it the model never forms the induction heads that read a value out of a search result.
        # 900 steps, not 450: its loss is still falling at 450 (0.38), and every row of the table rises with it.
        reasoner=dataclasses.replace(sft, steps=900, copy_warmup=CopyWarmupConfig(steps=300),
                                     optim=OptimConfig(lr=3e-3, warmup_steps=30, weight_decay=0.01)),
        # SFT-1 anchored to its initial model and scored on model-written tokens only: as the reference
        # (no anchor, observations scored) it pushes the rejected continuations' words down without
        # bound, and this small model stops answering at all (0 of 330 answered, EM 0).
        # beta 10: the sigmoid scores a per-token mean, and at beta 1 it keeps pushing until the anchored
        # gap is ~2 nats a token, which wrecks the reasoner's language (SFT-1 row EM 0, repetition loops).
        sft1=dataclasses.replace(sft, steps=60, optim=OptimConfig(lr=5e-4, warmup_steps=5),
                                 contrastive=ContrastiveParams(beta=10.0, reference=True, observations=False)),
        sft2=dataclasses.replace(sft, steps=200, optim=OptimConfig(lr=1e-3, warmup_steps=20)),
        # SFT-3's loss is mostly search-result tokens the model has never seen; at SFT-2's rates
        # (1e-4 and up) they wreck its language (repetition loops), so it gets a 30x lower rate.
        sft3=dataclasses.replace(sft, steps=40, optim=OptimConfig(lr=3e-5, warmup_steps=5)),
        # Rewards are sparse here (~0.1 a rollout): most groups of 4 score all 0 and teach nothing, so each
        # step rolls out 4x the prompts and updates on the groups whose rewards differ (rl.oversample).
        rl=RLConfig(steps=12, prompts_per_step=8, group_size=4, oversample=4, sim_fraction=5 / 6, loop=loop,
                    grpo=GRPOParams(kl_coef=0.001), optim=OptimConfig(lr=1e-4, decay="constant")),
        eval=EvalSettings(batch_slots=16, max_response_tokens=768, max_actions=4, answer_reserve=32),
    )
    if variant == "quick":
        return dataclasses.replace(
            cfg, name="default-quick", world=dataclasses.replace(cfg.world, size="tiny"),
            reasoner=dataclasses.replace(cfg.reasoner, steps=100, copy_warmup=CopyWarmupConfig(steps=100)),
            sft1=dataclasses.replace(cfg.sft1, steps=10),
            sft2=dataclasses.replace(cfg.sft2, steps=40), sft3=dataclasses.replace(cfg.sft3, steps=7),
            rl=dataclasses.replace(cfg.rl, steps=4, prompts_per_step=4, group_size=4),
            rollout=dataclasses.replace(cfg.rollout, max_response_tokens=384),
            eval=dataclasses.replace(cfg.eval, max_response_tokens=384))
    if variant == "tiny":
        return dataclasses.replace(
            cfg, name="default-tiny", world=dataclasses.replace(cfg.world, size="tiny"),
            model=dataclasses.replace(model, hidden_size=64, intermediate_size=128, num_layers=2),
            sampling=dataclasses.replace(cfg.sampling, max_new_tokens=64),
            # short rows: what the tests run (seconds per stage)
            reasoner=dataclasses.replace(cfg.reasoner, steps=8, max_len=384, copy_warmup=CopyWarmupConfig()),
            sft1=dataclasses.replace(cfg.sft1, steps=4, max_len=512),
            sft2=dataclasses.replace(cfg.sft2, steps=4, max_len=512),
            sft3=dataclasses.replace(cfg.sft3, steps=4, max_len=512),
            rl=dataclasses.replace(cfg.rl, steps=2, prompts_per_step=2, oversample=1),
            rollout=dataclasses.replace(cfg.rollout, max_response_tokens=512),
            eval=dataclasses.replace(cfg.eval, max_response_tokens=512))
    if variant is not None:
        raise ConfigError([("variant", f"unknown variant {variant!r}; choose from {VARIANTS}")])
    return cfg
