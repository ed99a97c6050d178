"""Run one supervised stage end to end: data, model, optimizer, loop, export.

    run_sft(cfg, "2", init="runs/reasoner", out="runs/sft2")

Stages: "reasoner" (the base model: pretraining text + CoT traces, never searches), "1" (CoT+A
contrastive), "2" (CoA + CoT, observations masked), "3" (same data, observations included).
"""

from __future__ import annotations

import json
import math
import pathlib

import jax
import numpy as np

from coa_jax.config.loading import to_dict
from coa_jax.config.schema import Config, SFTConfig
from coa_jax.data.collate import load_pair_examples, load_sft_examples
from coa_jax.data.provenance import Provenance
from coa_jax.data.streams import PairStream, SFTStream
from coa_jax.data.tokenize_sft import ChatTokenizer, TokenizedExample
from coa_jax.models.params import param_shardings
from coa_jax.sharding.mesh import make_mesh, validate_for_devices
from coa_jax.sharding.rules import TRAINING_RULES, Sharder
from coa_jax.train import workspace
from coa_jax.train.loop import run_loop
from coa_jax.train.optimizer import make_optimizer
from coa_jax.train.sft import ContrastiveBody, NextTokenBody, count_batches
from coa_jax.train.step import init_train_state

SFT_STAGES = ("reasoner", "1", "2", "3")


def stage_config(cfg: Config, stage: str) -> SFTConfig:
    return {"reasoner": cfg.reasoner, "1": cfg.sft1, "2": cfg.sft2, "3": cfg.sft3}[stage]


def run_sft(cfg: Config, stage: str, *, init: str, out: str | pathlib.Path, data: str = "") -> pathlib.Path:
    """Train one SFT stage into `out` (resuming if it holds an unfinished run); returns OUT/hf."""
    if stage not in SFT_STAGES:
        raise ValueError(f"stage must be one of {SFT_STAGES}, got {stage!r}")
    out = pathlib.Path(out)
    if (out / "DONE").exists() and (out / "hf" / "config.json").exists():
        return out / "hf"
    validate_for_devices(cfg, jax.device_count())
    sharder = Sharder(make_mesh(cfg.mesh), TRAINING_RULES)
    world = workspace.world_dir(cfg, out.parent)
    data_dir = pathlib.Path(data) if data else workspace.teacher_dir(cfg, world)
    model_cfg, params, tokenizer = workspace.initial_model(cfg, init, sharder, world / "tokenizer")
    sc = stage_config(cfg, stage)
    factory, body_cls = _data(stage, sc, cfg.seed, data_dir, world, ChatTokenizer(tokenizer), tokenizer)
    total = sc.steps or max(1, math.ceil(sc.epochs * count_batches(factory)))
    optimizer = make_optimizer(sc.optim, total, params)
    shardings = param_shardings(model_cfg, sharder)
    state = init_train_state(params, optimizer, shardings)
    state_shardings = jax.tree.map(lambda x: x.sharding, state)
    stream = factory(num_epochs=None)
    if body_cls is ContrastiveBody:
        body = ContrastiveBody(model_cfg, sharder, stream, params=sc.contrastive, optimizer=optimizer,
                               state_shardings=state_shardings, micro_batches=sc.micro_batches)
    else:
        body = NextTokenBody(model_cfg, sharder, stream, include_observations=(stage == "3"), optimizer=optimizer,
                             state_shardings=state_shardings, micro_batches=sc.micro_batches)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps({"stage": f"sft{stage}", "init": init, "config": to_dict(cfg)},
                                                indent=2))
    result = run_loop(out, state, total, body, sc.loop, meta={"stage": f"sft{stage}"}, model_dict=to_dict(model_cfg),
                      progress=f"sft-{stage}", get_data_state=body.get_state, set_data_state=body.set_state)
    return workspace.finish_stage(out, result.state.params, model_cfg, tokenizer)


def _data(stage: str, sc: SFTConfig, seed: int, data_dir: pathlib.Path, world: pathlib.Path, chat: ChatTokenizer,
          tokenizer):
    """(stream factory(num_epochs), body class) for the stage."""
    if stage == "1":
        pairs, _ = load_pair_examples(data_dir / "CoT+A_data.json", chat, max_len=sc.max_len)
        return (lambda num_epochs: PairStream(pairs, rows=sc.batch_rows, max_len=sc.max_len, seed=seed,
                                              num_epochs=num_epochs)), ContrastiveBody
    if stage == "reasoner":
        examples = plain_text_examples((world / "pretrain.txt").read_text().splitlines(), tokenizer, sc.max_len)
        traces = data_dir / "reasoner_traces.jsonl"
        if traces.exists():
            examples += load_sft_examples(traces, chat, max_len=sc.max_len)
    else:
        examples = []
        for name in ("CoA_data.jsonl", "CoT_data.jsonl"):
            if (data_dir / name).exists():
                examples += load_sft_examples(data_dir / name, chat, max_len=sc.max_len)
    if not examples:
        raise FileNotFoundError(f"no SFT data for stage {stage} in {data_dir}")
    return (lambda num_epochs: SFTStream(examples, rows=sc.batch_rows, length=sc.max_len, seed=seed,
                                         num_epochs=num_epochs)), NextTokenBody


def plain_text_examples(lines: list[str], tokenizer, max_len: int) -> list[TokenizedExample]:
    """Pretraining lines as examples: every token after the first is a model-written target."""
    out = []
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    for line in lines:
        if not line.strip():
            continue
        ids = list(tokenizer.encode(line, add_special_tokens=False)) + eos
        labels = [int(Provenance.PROMPT)] + [int(Provenance.POLICY)] * (len(ids) - 1)
        out.append(TokenizedExample(np.asarray(ids, np.int32), np.asarray(labels, np.int8)).cut(max_len))
    return out
