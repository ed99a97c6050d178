"""Checkpoints with orbax: train state + run metadata, keep-last-k, async, restore into any mesh.

A checkpoint holds the TrainState (params, optimizer state, step) and a JSON `meta` record: the
RNG seed/step, the data position, the schedule stage, metrics counters and the model config.
Restoring takes abstract target shardings, so a checkpoint written on one mesh loads on another.

What protects a run (each case is tested, see RELIABILITY.md):

- orbax commits a step by renaming its temporary directory, so a save killed mid-write leaves no
  step behind (the temporary directory is removed when the directory is next opened);
- `meta` also records the state's layout (every leaf's path and shape) and a fingerprint (each
  leaf's raw bits summed as uint32 words, exact on any mesh), checked after every restore: a
  truncated or bit-flipped checkpoint is detected, reported with a warning, moved aside to
  `<dir>_unusable/<step>` and the previous one is used; when no checkpoint restores, restoring
  fails loudly instead of silently starting over;
- a checkpoint written for another model, another stage or another state layout (e.g. a changed
  optimizer) is refused with `IncompatibleCheckpoint`, naming what differs;
- a failed write (full disk, quota) raises `CheckpointWriteError` naming the step; the previous
  checkpoint is untouched (old steps are only deleted after a new one is committed);
- a restore of one named step (`restore(..., step=N)`, e.g. for an export) never falls back to
  another: a missing or damaged step is `UnavailableStep`, naming the steps there are.
"""

from __future__ import annotations

import functools
import logging
import pathlib
import shutil
import time

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from coa_jax.models.tensor_sources import CheckpointError

log = logging.getLogger(__name__)

# meta keys that must match between a checkpoint and the run restoring it ("model" is compared
# key by key; the state layout separately)
MUST_MATCH = ("stage",)


class IncompatibleCheckpoint(CheckpointError):
    """The checkpoint was written for another model, stage or state layout; the message names it."""


class UnusableCheckpoints(CheckpointError):
    """Checkpoints exist but none restores (each is named with its reason)."""


class UnavailableStep(CheckpointError):
    """The step asked for is not among the checkpoints, or does not restore intact."""


class CheckpointWriteError(OSError):
    """Saving a checkpoint failed (e.g. the disk is full); earlier checkpoints are intact."""


class Checkpointer:
    """A run's checkpoint directory.

    Args:
      directory: where the steps live (created unless read_only).
      keep / async_save: how many steps to keep; whether saves run in the background.
      read_only: open an existing directory to restore from only: nothing is created, deleted,
        cleaned up or set aside (the run that owns it may still be writing there).

    Raises:
      FileNotFoundError: read_only and the directory does not exist.
    """

    def __init__(self, directory: str | pathlib.Path, *, keep: int = 3, async_save: bool = True,
                 read_only: bool = False):
        self.directory = pathlib.Path(directory).absolute()
        self.read_only = read_only
        if read_only:
            if not self.directory.is_dir():
                raise FileNotFoundError(f"no checkpoint directory {self.directory}")
            # not orbax's own read_only (it warns on every open): nothing here saves, deletes or cleans up
            options = ocp.CheckpointManagerOptions(create=False, max_to_keep=None, cleanup_tmp_directories=False,
                                                   enable_async_checkpointing=False)
        else:
            options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=async_save,
                                                   create=True, cleanup_tmp_directories=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options)
        self._pending: int | None = None  # the step of a save that may still be in flight
        self._failed = False

    def save(self, step: int, state, meta: dict) -> None:
        """Start saving (async); orbax commits atomically, so a killed save leaves no partial step.

        Raises:
          CheckpointWriteError: this save, or an earlier async one, could not be written.
        """
        if self.read_only:
            raise RuntimeError(f"{self.directory} was opened read-only")
        meta = {**meta, "layout": state_layout(state), "fingerprint": fingerprint(state)}
        self.wait()  # orbax would wait for the previous save anyway; this names it if it failed
        with self._write_errors(step):
            self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                            meta=ocp.args.JsonSave(meta)), force=True)
        self._pending = step

    def check(self) -> None:
        """Raise CheckpointWriteError if an async save has failed (cheap; call once a step)."""
        with self._write_errors(self._pending):
            self.manager.check_for_errors()

    def wait(self) -> None:
        with self._write_errors(self._pending):
            self.manager.wait_until_finished()
        self._pending = None

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def restore(self, abstract_state, *, expect_model: dict | None = None, expect: dict | None = None,
                step: int | None = None):
        """(state, meta, step) of the newest checkpoint that restores intact, or None if there is none.

        Args:
          abstract_state: a pytree of jax.ShapeDtypeStruct with `sharding` set (the target layout).
          expect_model: the run's model config (as a dict); checkpoints for another are refused.
          expect: other meta values that must match (keys of MUST_MATCH, e.g. {"stage": "sft2"}).
          step: restore exactly this step: no fallback to another, nothing set aside.

        Raises:
          IncompatibleCheckpoint: the newest readable checkpoint (or `step`) is for another model,
            stage or layout.
          UnusableCheckpoints: there are checkpoints but none restores intact.
          UnavailableStep: `step` is not there or does not restore intact (names the steps there are).
        """
        if step is not None:
            return self._restore_exactly(step, abstract_state, expect_model, expect or {})
        unusable: list[tuple[int, str]] = []
        for candidate in reversed(self.steps()):
            try:
                state, meta = self._restore_step(candidate, abstract_state, expect_model, expect or {})
            except _Damaged as err:  # fall back to the previous checkpoint
                unusable.append((candidate, self._warn(candidate, err.what, err.why)))
                continue
            if unusable:
                self._set_aside([s for s, _ in unusable])
            return state, meta, candidate
        if unusable:
            reasons = "; ".join(f"step {s}: {why}" for s, why in unusable)
            raise UnusableCheckpoints(f"no checkpoint in {self.directory} restores ({reasons}); nothing was "
                                      f"changed: move the directory away to start over")
        return None

    def read_meta(self, step: int) -> dict:
        """The JSON record saved with `step` (model config, stage, data position, ...).

        Raises:
          UnavailableStep: no such step, or its record is unreadable.
        """
        self._require(step)
        try:
            return self._meta(step)
        except _Damaged as err:
            raise self._unavailable(step, f"{err.what} ({_first_line(err.why)})") from None

    def close(self) -> None:
        """Wait for pending saves and release the manager (a failed save is raised once, not again here)."""
        reported = self._failed
        try:
            self.wait()
        except CheckpointWriteError:
            if not reported:
                raise
        finally:
            try:
                self.manager.close()
            except Exception as err:
                if not self._failed:
                    raise
                log.debug("closing the checkpoint manager after a failed save: %s", err)

    # ---- internals -------------------------------------------------------------------------

    def _meta(self, step: int) -> dict:
        try:
            meta = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
            if not isinstance(meta, dict):
                raise ValueError(f"meta is a {type(meta).__name__}, not an object")
        except Exception as err:  # corrupt metadata
            raise _Damaged("is unreadable", err) from err
        return meta

    def _restore_step(self, step: int, abstract_state, expect_model: dict | None, expect: dict):
        """(state, meta) of `step`, checked against the run and its fingerprint.

        Raises:
          IncompatibleCheckpoint: written for another model, stage or layout.
          _Damaged: unreadable, failing to restore, or not matching its fingerprint.
        """
        meta = self._meta(step)
        problems = _incompatibilities(meta, abstract_state, expect_model, expect)
        if problems:
            raise IncompatibleCheckpoint(f"checkpoint {self.directory}/{step} does not fit this run: "
                                         + "; ".join(problems))
        try:
            state = self.manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state)))["state"]
        except Exception as err:
            raise _Damaged("failed to restore", err) from err
        damaged = _fingerprint_mismatch(meta.get("fingerprint"), state)
        if damaged:
            raise _Damaged("is corrupted", f"fingerprint differs at {damaged}")
        return state, meta

    def _restore_exactly(self, step: int, abstract_state, expect_model: dict | None, expect: dict):
        self._require(step)
        try:
            state, meta = self._restore_step(step, abstract_state, expect_model, expect)
        except _Damaged as err:
            raise self._unavailable(step, f"{err.what} ({_first_line(err.why)})") from None
        return state, meta, step

    def _require(self, step: int) -> None:
        if step not in self.steps():
            raise self._unavailable(step, "does not exist")

    def _unavailable(self, step: int, why: str) -> UnavailableStep:
        steps = self.steps()
        others = ", ".join(str(s) for s in steps if s != step) or "none"
        return UnavailableStep(f"checkpoint step {step} in {self.directory} {why}; "
                               f"{'other steps' if step in steps else 'steps'} there: {others}")

    def _warn(self, step: int, what: str, err) -> str:
        why = _first_line(err)
        log.warning("checkpoint %s/%d %s (%s); trying the previous one", self.directory, step, what, why)
        return f"{what} ({why})"

    def _set_aside(self, steps: list[int]) -> None:
        """Move unusable steps out of the manager's directory (kept for inspection, never deleted),
        so the run can write those step numbers again."""
        if self.read_only:
            return
        aside = self.directory.parent / f"{self.directory.name}_unusable"
        aside.mkdir(parents=True, exist_ok=True)
        for step in steps:
            target = aside / f"{step}-{time.strftime('%Y%m%d-%H%M%S')}"
            if jax.process_index() == 0:
                shutil.move(str(self.directory / str(step)), str(target))
            log.warning("moved unusable checkpoint %s/%d to %s", self.directory, step, target)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("coa_jax checkpoint set aside")
        self.manager.reload()

    def _write_errors(self, step: int | None):
        return _WriteErrors(self, step)


class _Damaged(Exception):
    """A checkpoint step that cannot be used: `what` happened, `why` (an exception or text)."""

    def __init__(self, what: str, why):
        super().__init__(what)
        self.what, self.why = what, why


def _first_line(err) -> str:
    return str(err).splitlines()[0][:300] if str(err) else type(err).__name__


class _WriteErrors:
    """Turns any exception of a save into one CheckpointWriteError naming the step and the last good one."""

    def __init__(self, ckpt: Checkpointer, step: int | None):
        self.ckpt, self.step = ckpt, step

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if err is None or not isinstance(err, Exception) or isinstance(err, CheckpointWriteError):
            return False
        self.ckpt._failed = True
        committed = [s for s in self.ckpt.steps() if s != self.step]
        last = f"step {committed[-1]}" if committed else "none"
        cause = str(err).splitlines()[0][:400] if str(err) else type(err).__name__
        raise CheckpointWriteError(f"saving checkpoint step {self.step} to {self.ckpt.directory} failed: {cause} "
                                   f"(the last complete checkpoint, {last}, is intact)") from err


def abstract_with_shardings(tree, shardings):
    """ShapeDtypeStructs carrying the target shardings (restore straight into the new mesh)."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


# ---- layout and fingerprint ------------------------------------------------------------------


def state_layout(tree) -> dict[str, list[int]]:
    """Every leaf's key path and shape (what a restore target must match)."""
    return {jax.tree_util.keystr(path): list(leaf.shape) for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def fingerprint(tree) -> list[int]:
    """Per leaf, the sum of its raw bits read as uint32 words, modulo 2**32.

    Integer addition is associative, so the value is exact and the same on any mesh or sharding;
    any single flipped bit changes it.
    """
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return []
    return [int(v) for v in jax.device_get(_fingerprint_fn(getattr(leaves[0].sharding, "mesh", None))(leaves))]


@functools.lru_cache(maxsize=8)
def _fingerprint_fn(mesh):
    """The jitted sums; replicated output on a mesh, so every process can read it (multi-host)."""
    out = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()) if mesh is not None else None
    return jax.jit(lambda leaves: jnp.stack([jnp.sum(_words(x), dtype=jnp.uint32) for x in leaves]),
                   out_shardings=out)


def _words(x):
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    if x.dtype == jnp.bool_:
        return x.astype(jnp.uint32)
    unsigned = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint32}[x.dtype.itemsize]
    return jax.lax.bitcast_convert_type(x, unsigned).astype(jnp.uint32)  # 8-byte words become 2 uint32


def _fingerprint_mismatch(saved, state) -> str | None:
    """The first leaf path whose fingerprint differs from the saved one (None: all equal or none saved)."""
    if saved is None:
        return None
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(state)]
    now = fingerprint(state)
    if len(saved) != len(now):
        return f"{len(saved)} leaves saved, {len(now)} restored"
    for path, a, b in zip(paths, saved, now):
        if a != b:
            return path or "<root>"
    return None


def _incompatibilities(meta: dict, abstract_state, expect_model: dict | None, expect: dict) -> list[str]:
    out = []
    if expect_model is not None and meta.get("model") is not None:
        out += _diff(meta["model"], expect_model)
    for key in MUST_MATCH:
        if key in expect and meta.get(key) is not None and meta[key] != expect[key]:
            out.append(f"{key}: checkpoint has {meta[key]!r}, this run is {expect[key]!r}")
    saved = meta.get("layout")
    if saved is not None:
        out += _layout_diff(saved, state_layout(abstract_state))
    return out


def _layout_diff(saved: dict, current: dict, limit: int = 5) -> list[str]:
    out = []
    for path in sorted(set(saved) | set(current)):
        if path not in current:
            out.append(f"state{path}: in the checkpoint, not in this run")
        elif path not in saved:
            out.append(f"state{path}: in this run, not in the checkpoint")
        elif list(saved[path]) != list(current[path]):
            out.append(f"state{path}: checkpoint shape {tuple(saved[path])}, run shape {tuple(current[path])}")
    if len(out) > limit:
        out = out[:limit] + [f"... {len(out) - limit} more state differences"]
    return out


def _diff(saved: dict, current: dict, prefix: str = "model.") -> list[str]:
    out = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _diff(a, b, f"{prefix}{key}.")
        elif a != b and key not in ("dtype", "remat", "attention"):  # runtime choices, not the weights
            out.append(f"{prefix}{key}: checkpoint has {a!r}, config has {b!r}")
    return out
