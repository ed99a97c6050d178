"""Run one supervised stage end to end: data, model, optimizer, loop, export.

    run_sft(cfg, "2", init="runs/reasoner", out="runs/sft2")

Stages: "reasoner" (the base model: pretraining text + CoT traces, never searches), "1" (CoT+A
contrastive), "2" (CoA + CoT, observations masked), "3" (same data, observations included).

Multi-host (every process runs this): process 0 builds the world and teacher data while the
others wait; each process builds only its rows of every batch (`coa_jax.runtime.global_batch`);
checkpoints are written by all processes together; process 0 alone writes config.json, metrics
and the exported weights.
"""

from __future__ import annotations

import json
import logging
import math
import pathlib

import jax
import numpy as np

from coa_jax.config.errors import ConfigError
from coa_jax.config.loading import to_dict
from coa_jax.config.schema import Config, SFTConfig
from coa_jax.data.collate import load_pair_examples, load_sft_examples
from coa_jax.data.provenance import Provenance
from coa_jax.data.streams import PairStream, SFTStream
from coa_jax.data.tokenize_sft import ChatTokenizer, TokenizedExample
from coa_jax.models.params import param_shardings
from coa_jax.runtime.global_batch import micro_rows
from coa_jax.runtime.process import barrier, is_main, main_first
from coa_jax.sharding.mesh import make_mesh, validate_for_devices
from coa_jax.sharding.rules import TRAINING_RULES, Sharder
from coa_jax.train import workspace
from coa_jax.train.copy_warmup import run_copy_warmup
from coa_jax.train.loop import run_loop
from coa_jax.train.optimizer import make_optimizer
from coa_jax.train.reference import ReferenceModel
from coa_jax.train.sft import ContrastiveBody, NextTokenBody, batch_sharding, count_batches
from coa_jax.train.step import init_train_state

SFT_STAGES = ("reasoner", "1", "2", "3")
STAGE_KEYS = {"reasoner": "reasoner", "1": "sft1", "2": "sft2", "3": "sft3"}  # stage -> its Config section

log = logging.getLogger(__name__)


def stage_config(cfg: Config, stage: str) -> SFTConfig:
    return getattr(cfg, STAGE_KEYS[stage])


def run_sft(cfg: Config, stage: str, *, init: str, out: str | pathlib.Path, data: str = "") -> pathlib.Path:
    """Train one SFT stage into `out` (resuming if it holds an unfinished run); returns OUT/hf."""
    if stage not in SFT_STAGES:
        raise ValueError(f"stage must be one of {SFT_STAGES}, got {stage!r}")
    out = pathlib.Path(out)
    if (out / "DONE").exists() and (out / "hf" / "config.json").exists():
        return out / "hf"
    sc = stage_config(cfg, stage)
    if sc.copy_warmup.steps and init:
        raise ConfigError([(f"{STAGE_KEYS[stage]}.copy_warmup.steps", f"the copy warm-up is for a model at random "
                            f"init, but this stage starts from {init!r}; set it to 0")])
    validate_for_devices(cfg, jax.device_count())
    sharder = Sharder(make_mesh(cfg.mesh), TRAINING_RULES)
    world = main_first("world", lambda: workspace.world_dir(cfg, out.parent))
    data_dir = pathlib.Path(data) if data else main_first("teacher", lambda: workspace.teacher_dir(cfg, world))
    model_cfg, params, tokenizer = workspace.initial_model(cfg, init, sharder, world / "tokenizer")
    if sc.copy_warmup.steps:
        params = run_copy_warmup(sc.copy_warmup, model_cfg, params, sharder, tokenizer, out / "copy_warmup",
                                 seed=cfg.seed, loop_cfg=sc.loop)
    multihost = jax.process_count() > 1
    # the rows of each global batch this process builds (all of them in a single process)
    mine = micro_rows(batch_sharding(sharder, sc.micro_batches, sc.batch_rows, sc.max_len), sc.micro_batches,
                      sc.batch_rows, sc.max_len) if multihost else None
    factory, body_cls = _data(stage, sc, cfg.seed, data_dir, world, ChatTokenizer(tokenizer), tokenizer, mine)
    total = sc.steps or max(1, math.ceil(sc.epochs * count_batches(factory)))
    optimizer = make_optimizer(sc.optim, total, params)
    shardings = param_shardings(model_cfg, sharder)
    state = init_train_state(params, optimizer, shardings)
    state_shardings = jax.tree.map(lambda x: x.sharding, state)
    stream = factory(num_epochs=None)
    global_rows = sc.batch_rows // sc.micro_batches if multihost else None
    if body_cls is ContrastiveBody:
        # anchored to its initial model: a frozen copy (the train state's is donated at every update)
        reference = ReferenceModel(params) if sc.contrastive.reference else None
        body = ContrastiveBody(model_cfg, sharder, stream, params=sc.contrastive, optimizer=optimizer,
                               state_shardings=state_shardings, micro_batches=sc.micro_batches,
                               global_rows=global_rows, reference=reference)
    else:
        body = NextTokenBody(model_cfg, sharder, stream, include_observations=(stage == "3"), optimizer=optimizer,
                             state_shardings=state_shardings, micro_batches=sc.micro_batches, global_rows=global_rows)
    if is_main():
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps({"stage": f"sft{stage}", "init": init, "config": to_dict(cfg)},
                                                    indent=2))
    result = run_loop(out, state, total, body, sc.loop, meta={"stage": f"sft{stage}"}, model_dict=to_dict(model_cfg),
                      progress=f"sft-{stage}", get_data_state=body.get_state, set_data_state=body.set_state)
    return export_once(out, result.state.params, model_cfg, tokenizer)


def export_once(out: pathlib.Path, params, model_cfg, tokenizer) -> pathlib.Path:
    """OUT/hf written by process 0 (weights gathered to host first when sharded across processes)."""
    if jax.process_count() == 1:
        return workspace.finish_stage(out, params, model_cfg, tokenizer)
    from jax.experimental import multihost_utils

    host = multihost_utils.process_allgather(params, tiled=True)  # every process takes part; numpy trees
    if is_main():
        workspace.finish_stage(out, host, model_cfg, tokenizer)
    barrier("export")
    return out / "hf"


def _data(stage: str, sc: SFTConfig, seed: int, data_dir: pathlib.Path, world: pathlib.Path, chat: ChatTokenizer,
          tokenizer, local_rows: list[int] | None = None):
    """(stream factory(num_epochs), body class) for the stage; streams build only `local_rows`."""
    if stage == "1":
        pairs, dropped = load_pair_examples(data_dir / "CoT+A_data.json", chat, max_len=sc.max_len)
        cut = sum(p.truncated > 0 for p in pairs)
        if cut or dropped:
            log.warning("stage 1: %d of %d pairs are cut to sft1.max_len=%d and %d dropped (no room after their "
                        "context); raise sft1.max_len to keep them", cut, len(pairs) + dropped, sc.max_len, dropped)
        return (lambda num_epochs: PairStream(pairs, rows=sc.batch_rows, max_len=sc.max_len, seed=seed,
                                              num_epochs=num_epochs, local_rows=local_rows)), ContrastiveBody
    if stage == "reasoner":
        examples = reasoner_examples(data_dir, world, chat, tokenizer)
    else:
        examples = []
        for name in ("CoA_data.jsonl", "CoT_data.jsonl"):
            if (data_dir / name).exists():
                examples += load_sft_examples(data_dir / name, chat)
    if not examples:
        raise FileNotFoundError(f"no SFT data for stage {stage} in {data_dir}")
    examples = cut_to_length(examples, sc.max_len, stage)
    return (lambda num_epochs: SFTStream(examples, rows=sc.batch_rows, length=sc.max_len, seed=seed,
                                         num_epochs=num_epochs, local_rows=local_rows)), NextTokenBody


def reasoner_examples(data_dir: pathlib.Path, world: pathlib.Path, chat, tokenizer) -> list[TokenizedExample]:
    """The base reasoner's rows: the world's pretraining text, the teacher's CoT traces and skill rows
    (their tool calls and observations are no targets, so they teach reading results, never calling a
    tool), and its tool-use rows (`teacher.base_tool_use`; calls included, observations masked as in
    SFT-2)."""
    examples = plain_text_examples((world / "pretrain.txt").read_text().splitlines(), tokenizer)
    for name in ("reasoner_traces.jsonl", "reasoner_skills.jsonl"):
        if (data_dir / name).exists():
            examples += load_sft_examples(data_dir / name, chat, calls_as_prompt=True)
    if (data_dir / "reasoner_tool_use.jsonl").exists():
        examples += load_sft_examples(data_dir / "reasoner_tool_use.jsonl", chat)
    return examples


def cut_to_length(examples: list[TokenizedExample], max_len: int, stage: str) -> list[TokenizedExample]:
    """The examples cut to `max_len`, with a warning naming the config key when targets are lost.

    A cut row loses its end: in a CoA row, the reading of the last results and the answer; in a
    reasoner's reading row, possibly every target. Counted over the model-written (target) tokens.
    """
    policy = int(Provenance.POLICY)
    targets = sum(int(np.sum(np.asarray(e.labels) == policy)) for e in examples)
    lost = sum(int(np.sum(np.asarray(e.labels)[max_len:] == policy)) for e in examples)
    rows = sum(len(e) > max_len for e in examples)
    if lost:
        key = f"{STAGE_KEYS[stage]}.max_len"
        log.warning("stage %s: %s=%d cuts %d of %d examples, losing %d of %d target tokens (%.1f%%); raise %s to "
                    "keep them", stage, key, max_len, rows, len(examples), lost, targets, 100 * lost / targets, key)
    return [e.cut(max_len) for e in examples]


def plain_text_examples(lines: list[str], tokenizer) -> list[TokenizedExample]:
    """Pretraining lines as examples, uncut: every token after the first is a model-written target."""
    out = []
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    for line in lines:
        if not line.strip():
            continue
        ids = list(tokenizer.encode(line, add_special_tokens=False)) + eos
        labels = [int(Provenance.PROMPT)] + [int(Provenance.POLICY)] * (len(ids) - 1)
        out.append(TokenizedExample(np.asarray(ids, np.int32), np.asarray(labels, np.int8)))
    return out
