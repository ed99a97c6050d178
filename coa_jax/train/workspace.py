"""Where a run's inputs come from: the world, the teacher data, the starting weights, the tokenizer.

A finished stage writes `OUT/hf/` (a Hugging Face directory with the tokenizer), so any stage's
output is a valid `--init` for the next one and loads in `transformers` as well. The directory is
written as `OUT/hf.partial/` and renamed when complete, so an `hf/` that exists is whole.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
import shutil

import jax

from coa_jax.config.errors import ConfigError
from coa_jax.config.schema import Config
from coa_jax.models.hf_export import export_hf
from coa_jax.models.loading import load_model
from coa_jax.models.model_config import ModelConfig
from coa_jax.models.params import Params, init_params
from coa_jax.models.tensor_sources import CheckpointError
from coa_jax.models.tokenizer import load_tokenizer
from coa_jax.sharding.rules import Sharder

log = logging.getLogger(__name__)


def world_dir(cfg: Config, out_dir: str | pathlib.Path) -> pathlib.Path:
    """The world to use: cfg.world.dir, or one built (once) under the run's directory."""
    if cfg.world.dir:
        path = pathlib.Path(cfg.world.dir)
        if not (path / "stats.json").exists():
            raise FileNotFoundError(f"world.dir={cfg.world.dir} holds no built world (no stats.json)")
        return path
    path = pathlib.Path(out_dir) / "world"
    if not (path / "stats.json").exists():
        from coa_jax.data.world import build_world

        log.info("building the %s world (seed %d) in %s", cfg.world.size, cfg.world.seed, path)
        build_world(path, seed=cfg.world.seed, size=cfg.world.size)
    check_built(path / "stats.json", {"world.size": ("size", cfg.world.size), "world.seed": ("seed", cfg.world.seed)})
    return path


def teacher_dir(cfg: Config, world: pathlib.Path) -> pathlib.Path:
    """The teacher's SFT data for `world` (written once beside it)."""
    path = world.parent / f"{world.name}_teacher"
    if not (path / "teacher_stats.json").exists():
        from coa_jax.data.teacher import write_teacher_data

        log.info("writing teacher data to %s", path)
        write_teacher_data(world, path, seed=cfg.seed, style=cfg.world.prompt_style, topk=cfg.env.topk,
                           habits=cfg.teacher.habits, base_tool_use=cfg.teacher.base_tool_use,
                           extra_worlds=cfg.teacher.extra_worlds)
    check_built(path / "teacher_stats.json", {
        "seed": ("seed", cfg.seed), "env.topk": ("topk", cfg.env.topk),
        "world.prompt_style": ("style", cfg.world.prompt_style),
        "teacher.habits": ("habits", dataclasses.asdict(cfg.teacher.habits)),
        "teacher.base_tool_use": ("base_tool_use", cfg.teacher.base_tool_use),
        "teacher.extra_worlds": ("extra_worlds", cfg.teacher.extra_worlds)})
    return path


def check_built(stats_file: pathlib.Path, want: dict[str, tuple[str, object]]) -> None:
    """Refuses data an earlier run built under other settings (it would be reused silently).

    `want`: config key -> (the field of the stats file that records it, this run's value). A field
    the file does not record (written by an older version) is not checked, with a warning.

    Raises:
      ConfigError: naming each key whose recorded value differs.
    """
    built = json.loads(stats_file.read_text())
    unrecorded = [key for key, (field, _) in want.items() if field not in built]
    if unrecorded:
        log.warning("%s does not record %s: cannot check that it was built with this run's values",
                    stats_file, ", ".join(unrecorded))
    problems = [(key, f"{stats_file.parent} was built with {field}={built.get(field)!r}, this run asks for {value!r} "
                      f"(use another --out, or delete {stats_file.parent} to rebuild it)")
                for key, (field, value) in want.items() if field in built and built[field] != value]
    if problems:
        raise ConfigError(problems)


def resolve_init(path: str | pathlib.Path) -> pathlib.Path:
    """A run directory stands for its exported weights (RUN/hf)."""
    p = pathlib.Path(path)
    if (p / "hf" / "config.json").exists():
        return p / "hf"
    return p


def initial_model(cfg: Config, init: str, sharder: Sharder, tokenizer_fallback: str | pathlib.Path | None
                  ) -> tuple[ModelConfig, Params, object]:
    """(model config, params in `sharder`'s layout, tokenizer) for a stage's starting point.

    init "" means random weights of `cfg.model` (the tokenizer then comes from cfg.tokenizer or
    `tokenizer_fallback`, e.g. the world's), its vocabulary raised to fit the tokenizer.

    Raises:
      CheckpointError: the tokenizer has more tokens than the checkpoint's embedding has rows (the
        embedding lookup would silently clamp the extra ids).
    """
    if init:
        src = resolve_init(init)
        model_cfg, params = load_model(src, sharder, dtype=cfg.model.dtype, param_dtype=cfg.model.param_dtype,
                                       remat=cfg.model.remat)
        tokenizer = load_tokenizer(cfg.tokenizer or src)
        if len(tokenizer) > model_cfg.vocab_size:
            raise CheckpointError(f"the tokenizer ({cfg.tokenizer or src}) has {len(tokenizer)} tokens but the "
                                  f"checkpoint {src} has vocab_size {model_cfg.vocab_size}: ids from "
                                  f"{model_cfg.vocab_size} up would have no embedding row")
        return model_cfg, params, tokenizer
    tok_path = cfg.tokenizer or tokenizer_fallback
    if not tok_path:
        raise FileNotFoundError("random init needs a tokenizer: set `tokenizer` (or train on the embedded world)")
    tokenizer = load_tokenizer(tok_path)
    model_cfg = cfg.model
    if len(tokenizer) > model_cfg.vocab_size:
        model_cfg = dataclasses.replace(model_cfg, vocab_size=_round_up(len(tokenizer), 64))
        log.info("vocab_size raised to %d to fit the tokenizer", model_cfg.vocab_size)
    return model_cfg, init_params(model_cfg, sharder, jax.random.key(cfg.seed)), tokenizer


def finish_stage(out_dir: str | pathlib.Path, params: Params, model_cfg: ModelConfig, tokenizer) -> pathlib.Path:
    """Export the final weights (and tokenizer) to OUT/hf."""
    return export_complete(params, model_cfg, pathlib.Path(out_dir) / "hf", tokenizer)


def export_complete(params: Params, model_cfg: ModelConfig, dest: pathlib.Path, tokenizer) -> pathlib.Path:
    """Write a Hugging Face directory at `dest` that exists only once complete.

    The export goes to `<dest>.partial` (a stale one from a killed export is removed first) and
    is renamed to `dest` at the end; an older `dest` is replaced. A kill at any point leaves
    either no `dest`, the old one, or the new one whole (a stage counts as finished only when
    `DONE` and `hf/config.json` exist, so a missing `hf/` is re-exported on the rerun).
    """
    dest = pathlib.Path(dest)
    partial, old = dest.with_name(dest.name + ".partial"), dest.with_name(dest.name + ".old")
    for stale in (partial, old):
        if stale.exists():
            shutil.rmtree(stale)
    export_hf(params, model_cfg, partial, tokenizer=tokenizer)
    if dest.exists():
        dest.rename(old)  # a directory cannot be replaced in one rename; `old` goes once `dest` is in place
    partial.rename(dest)
    if old.exists():
        shutil.rmtree(old)
    return dest


def run_tokenizer_path(cfg: Config, init: str, out_dir: str | pathlib.Path) -> pathlib.Path:
    """Where the tokenizer of the run in `out_dir` comes from, the same choice `initial_model` makes
    (its exported `hf/` first), without building anything.

    Raises:
      FileNotFoundError: naming the place it should be.
    """
    out = pathlib.Path(out_dir)
    if (out / "hf" / "config.json").exists():
        return out / "hf"
    if cfg.tokenizer:
        path = pathlib.Path(cfg.tokenizer)
    elif init:
        path = resolve_init(init)
    else:
        path = (pathlib.Path(cfg.world.dir) if cfg.world.dir else out.parent / "world") / "tokenizer"
    if not path.exists():
        raise FileNotFoundError(f"the tokenizer of run {out} should be at {path}, which does not exist")
    return path


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k


def build_registry(cfg: Config, world: pathlib.Path | None, tokenizer):
    """The tool library of the run's environment config (search over the world's corpus by default)."""
    from coa_jax.env.observation import TokenCounter
    from coa_jax.env.registry import ToolRegistry

    if cfg.env.search == "http":
        options = {"url": cfg.env.url, "topk": cfg.env.topk, "max_tokens": cfg.env.max_obs_tokens,
                   "timeout_s": cfg.env.timeout_s, "retries": cfg.env.retries}
    else:
        corpus = cfg.env.corpus or (str(world / "corpus.jsonl") if world is not None else "")
        if not corpus:
            raise FileNotFoundError("env.search=bm25 needs env.corpus (or a world)")
        options = {"corpus": corpus, "topk": cfg.env.topk, "max_tokens": cfg.env.max_obs_tokens}
    return ToolRegistry.from_config({"search": cfg.env.search}, {"search": options},
                                    tokens=TokenCounter.from_tokenizer(tokenizer))


def world_prompts(cfg: Config, world: pathlib.Path, tokenizer, split: str = "train"):
    """(prompt ids, golds) of a world split, with the run's instruction style and chat template."""
    from coa_jax.data.formats.messages import Message
    from coa_jax.data.tokenize_sft import ChatTokenizer
    from coa_jax.data.world import load_world
    from coa_jax.data.world.prompt import user_prompt

    chat = ChatTokenizer(tokenizer)
    questions = load_world(world).questions(split)
    ids = [chat.prompt_ids([Message("user", user_prompt(q.question, cfg.world.prompt_style))]) for q in questions]
    return ids, [tuple(q.golds) for q in questions], questions
