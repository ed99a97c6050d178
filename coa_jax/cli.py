"""Command-line entry point: `python -m coa_jax <command> ...`.

Each command lives in its own module, which exposes `add_arguments(parser)` and `run(args) -> int`.
Modules are imported lazily so `--help` and light commands do not pay for JAX start-up.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "pipeline": ("coa_jax.commands.pipeline", "the whole AutoCoA recipe on the embedded world (Table 1)"),
    "generate": ("coa_jax.commands.generate", "sample text from a checkpoint (HF dir, GGUF file)"),
    "world": ("coa_jax.commands.world", "build the embedded synthetic world"),
    "serve-retrieval": ("coa_jax.commands.serve_retrieval", "run the FlashRAG-compatible retrieval server"),
    "sft": ("coa_jax.commands.sft", "train one supervised stage (reasoner, 1, 2, 3)"),
    "rl": ("coa_jax.commands.rl", "GRPO in the simulated, real or scheduled environment"),
    "eval": ("coa_jax.commands.eval", "score a checkpoint on QA data: model-only, workflow or agent"),
    "export": ("coa_jax.commands.export", "write one checkpoint step of a run as a Hugging Face directory"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from coa_jax.runtime.distributed import CLI_HELP, DistributedSpec, split_cli_flags

    parser = argparse.ArgumentParser(prog="python -m coa_jax", description=__doc__.splitlines()[0],
                                     epilog=CLI_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    try:
        spec, argv = split_cli_flags(argv)
    except _user_errors() as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    name = argv[0]
    if name not in COMMANDS:
        parser.error(f"unknown command {name!r}; choose from {', '.join(COMMANDS)}")
    try:  # join a multi-process run (flags before COMMAND, or the environment) before JAX starts
        from coa_jax.runtime.distributed import initialize

        initialize(DistributedSpec.from_env().merged(spec))
    except _user_errors() as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    cmd_parser = argparse.ArgumentParser(prog=f"python -m coa_jax {name}", description=COMMANDS[name][1])
    module.add_arguments(cmd_parser)
    args = cmd_parser.parse_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except _user_errors() as err:  # bad input: a clear message, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    except _run_failures() as err:  # the run stopped itself (NaN budget, failed save): said once, no traceback
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        return 1


def _user_errors() -> tuple[type[Exception], ...]:
    from coa_jax.config.errors import ConfigError
    from coa_jax.models.hf_config import UnsupportedCheckpoint
    from coa_jax.models.tensor_sources import CheckpointError

    return (ConfigError, CheckpointError, UnsupportedCheckpoint, FileNotFoundError)


def _run_failures() -> tuple[type[Exception], ...]:
    from coa_jax.train.checkpoint import CheckpointWriteError
    from coa_jax.train.loop import TrainingAborted

    return (TrainingAborted, CheckpointWriteError)
