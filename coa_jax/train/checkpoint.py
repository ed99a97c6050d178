"""Checkpoints with orbax: train state + run metadata, keep-last-k, async, restore into any mesh.

A checkpoint holds the TrainState (params, optimizer state, step) and a JSON `meta` record: the
RNG seed/step, the data position, the schedule stage, metrics counters and the model config.
Restoring takes abstract target shardings, so a checkpoint written on one mesh loads on another.
A checkpoint that fails to restore (truncated, corrupted) is reported and the previous one is
used; one written for a different model config is refused, naming the mismatched keys.
"""

from __future__ import annotations

import logging
import pathlib

import jax
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


class IncompatibleCheckpoint(ValueError):
    """The checkpoint was written for another model; the message names the differing keys."""


class Checkpointer:
    def __init__(self, directory: str | pathlib.Path, *, keep: int = 3, async_save: bool = True):
        self.directory = pathlib.Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=async_save,
                                               create=True, cleanup_tmp_directories=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def save(self, step: int, state, meta: dict) -> None:
        """Start saving (async); orbax commits atomically, so a killed save leaves no partial step."""
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                        meta=ocp.args.JsonSave(meta)), force=True)

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def restore(self, abstract_state, *, expect_model: dict | None = None):
        """(state, meta, step) of the newest checkpoint that restores, or None if there is none.

        abstract_state: a pytree of jax.ShapeDtypeStruct with `sharding` set (the target layout).
        Raises:
          IncompatibleCheckpoint: the newest readable checkpoint is for a different model config.
        """
        for step in reversed(self.steps()):
            try:
                meta = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
            except Exception as err:  # corrupt metadata: fall back to the previous checkpoint
                log.warning("checkpoint %s/%d is unreadable (%s); trying the previous one", self.directory, step, err)
                continue
            if expect_model is not None and meta.get("model") is not None:
                diff = _diff(meta["model"], expect_model)
                if diff:
                    raise IncompatibleCheckpoint(
                        f"checkpoint {self.directory}/{step} was written for another model: " + "; ".join(diff))
            try:
                restored = self.manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract_state)))
            except Exception as err:
                log.warning("checkpoint %s/%d failed to restore (%s); trying the previous one",
                            self.directory, step, err)
                continue
            return restored["state"], meta, step
        return None

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def abstract_with_shardings(tree, shardings):
    """ShapeDtypeStructs carrying the target shardings (restore straight into the new mesh)."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


def _diff(saved: dict, current: dict, prefix: str = "model.") -> list[str]:
    out = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _diff(a, b, f"{prefix}{key}.")
        elif a != b and key not in ("dtype", "remat", "attention"):  # runtime choices, not the weights
            out.append(f"{prefix}{key}: checkpoint has {a!r}, config has {b!r}")
    return out
