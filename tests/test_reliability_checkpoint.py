"""Damaged, foreign and half-written checkpoints, and a disk that fills up while saving.

A corrupted or truncated checkpoint is detected (a bit flip included: orbax alone restores it
silently), reported, set aside, and the previous one is used; when none restores the run stops
instead of starting over. A checkpoint for another model, stage or state layout is refused naming
the difference. A write that fails (file size limit: the same failing write() as a full disk)
raises naming the step and leaves the last complete checkpoint intact; a process killed inside a
checkpoint commit resumes from the previous one. The last two run in a subprocess (this file is
also the driver: `python tests/test_reliability_checkpoint.py OUT [--async] [--fail-at S | --kill-at S]`).
"""

import json
import logging
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

if __name__ == "__main__":  # run as the driver: make the package importable without PYTHONPATH
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp

from coa_jax.models.tensor_sources import CheckpointError
from coa_jax.train.checkpoint import (Checkpointer, IncompatibleCheckpoint, UnusableCheckpoints,
                                      abstract_with_shardings, fingerprint)

ROOT = pathlib.Path(__file__).resolve().parents[1]
# orbax leaves the failed reads of a truncated file as coroutines that are never awaited; they are
# collected (and reported) during whichever test runs next: noise, not a failure
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def _state(seed):
    rs = np.random.RandomState(seed)  # random values: zstd barely compresses them, so bytes map to values
    return {"params": {"w": jnp.asarray(rs.randn(64, 64).astype(np.float32)),
                       "b": jnp.asarray(rs.randn(7).astype(np.float32)).astype(jnp.bfloat16)},
            "opt": {"mu": jnp.asarray(rs.randn(64, 64).astype(np.float32)), "count": jnp.int32(seed)}}


def _abstract(state):
    return abstract_with_shardings(state, jax.tree.map(lambda x: x.sharding, state))


def _two_checkpoints(directory):
    ckpt = Checkpointer(directory, keep=3, async_save=False)
    for step in (1, 2):
        ckpt.save(step, _state(step), {"stage": "sft2", "model": {"hidden_size": 64}, "step": step})
    ckpt.close()


def _biggest_file(step_dir):
    return max((p for p in step_dir.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def _flip_bit(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


CORRUPTIONS = {
    "bit_flip": lambda d: _flip_bit(_biggest_file(d)),  # restores without error: only the fingerprint sees it
    "truncated_data": lambda d: (lambda p: p.write_bytes(p.read_bytes()[:p.stat().st_size // 2]))(_biggest_file(d)),
    "garbage_meta": lambda d: (d / "meta" / "metadata").write_text("{not json"),
    "state_missing": lambda d: shutil.rmtree(d / "state"),
}


@pytest.mark.parametrize("damage", sorted(CORRUPTIONS))
def test_damaged_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog, damage):
    directory = tmp_path / "checkpoints"
    _two_checkpoints(directory)
    CORRUPTIONS[damage](directory / "2")
    caplog.set_level(logging.WARNING, "coa_jax.train.checkpoint")
    ckpt = Checkpointer(directory, keep=3, async_save=False)
    state, meta, step = ckpt.restore(_abstract(_state(0)), expect_model={"hidden_size": 64}, expect={"stage": "sft2"})
    assert step == 1 and meta["step"] == 1
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(_state(1))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert f"checkpoint {directory}/2 " in caplog.text and "trying the previous one" in caplog.text
    # the damaged step is kept aside for inspection, and its number can be written again
    assert [p.name.split("-")[0] for p in (tmp_path / "checkpoints_unusable").iterdir()] == ["2"]
    ckpt.save(2, _state(2), {"stage": "sft2", "step": 2})
    ckpt.close()
    assert Checkpointer(directory, async_save=False).restore(_abstract(_state(0)))[2] == 2


def test_when_no_checkpoint_restores_the_run_stops_and_changes_nothing(tmp_path):
    directory = tmp_path / "checkpoints"
    _two_checkpoints(directory)
    CORRUPTIONS["bit_flip"](directory / "2")
    CORRUPTIONS["truncated_data"](directory / "1")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    with pytest.raises(UnusableCheckpoints, match=r"no checkpoint in .* restores \(step 2: is corrupted .*; step 1: "):
        Checkpointer(directory, async_save=False).restore(_abstract(_state(0)))
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize("change, message", [
    ("model", "model.hidden_size: checkpoint has 64, config has 128"),
    ("stage", "stage: checkpoint has 'sft2', this run is 'sft3'"),
    ("optimizer", "state['opt']['nu']: in this run, not in the checkpoint"),
    ("shape", "state['params']['w']: checkpoint shape (64, 64), run shape (64, 32)"),
])
def test_checkpoint_of_another_config_is_refused_naming_the_difference(tmp_path, change, message):
    directory = tmp_path / "checkpoints"
    _two_checkpoints(directory)
    target, model, stage = _state(0), {"hidden_size": 64}, "sft2"
    if change == "model":
        model = {"hidden_size": 128}
    elif change == "stage":
        stage = "sft3"
    elif change == "optimizer":
        target["opt"]["nu"] = target["opt"]["mu"]
    else:
        target["params"]["w"] = target["params"]["w"][:, :32]
    with pytest.raises(IncompatibleCheckpoint) as err:
        Checkpointer(directory, async_save=False).restore(_abstract(target), expect_model=model,
                                                          expect={"stage": stage})
    assert message in str(err.value) and f"{directory}/2" in str(err.value)
    assert isinstance(err.value, CheckpointError)  # the CLI prints it as `error: ...` and exits 2


def test_fingerprint_is_exact_across_meshes_so_resharded_restores_pass(tmp_path):
    """Written sharded 8 ways, restored 2x4 and on one device: no false corruption alarm."""
    from jax.sharding import NamedSharding, PartitionSpec as P

    state = _state(3)
    eight = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    sharded = {"params": {"w": jax.device_put(state["params"]["w"], NamedSharding(eight, P("data", None))),
                          "b": state["params"]["b"]},
               "opt": {"mu": jax.device_put(state["opt"]["mu"], NamedSharding(eight, P(None, "data"))),
                       "count": state["opt"]["count"]}}
    ckpt = Checkpointer(tmp_path / "checkpoints", async_save=False)
    ckpt.save(1, sharded, {"stage": "x"})
    ckpt.close()
    grid = jax.make_mesh((2, 4), ("data", "fsdp"), axis_types=(jax.sharding.AxisType.Auto,) * 2)
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=NamedSharding(
        grid, P("fsdp", "data") if x.ndim == 2 else P())), state)
    for abstract in (target, _abstract(state)):
        restored, meta, step = Checkpointer(tmp_path / "checkpoints", async_save=False).restore(abstract)
        assert step == 1 and fingerprint(restored) == meta["fingerprint"] == fingerprint(state)


# ---- in a subprocess: a full disk, and a kill inside the commit ------------------------------


def _driver(out, *flags):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, __file__, str(out), *flags], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def _final_w(out):
    return np.asarray(json.loads((out / "final.json").read_text())["w"])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The toy run of the driver, in-process and without faults: (run directory, final w)."""
    from test_reliability_loop import ToyBody, run_toy

    from coa_jax.train.loop import LoopConfig

    out = tmp_path_factory.mktemp("straight") / "run"
    result = run_toy(out, ToyBody(), LoopConfig(save_every=1, keep_checkpoints=2, async_checkpoint=False), steps=6)
    return out, np.asarray(result.state["w"])


@pytest.mark.slow
def test_full_disk_fails_loudly_and_keeps_the_last_checkpoint(tmp_path, uninterrupted):
    """Async saves (the default): the failure stops the run at the next step, naming the step."""
    from test_reliability_loop import rows

    out = tmp_path / "run"
    full = _driver(out, "--fail-at", "3", "--async")  # from inside step 3 on, writes over 4 KiB fail
    assert full.returncode == 3, full.stderr[-3000:]
    assert "File too large" in full.stderr and not (out / "DONE").exists()
    last = sorted(int(p.name) for p in (out / "checkpoints").iterdir() if p.name.isdigit())[-1]
    assert last in (2, 3)  # step 3's save may still have been writing when the disk filled
    assert f"saving checkpoint step {last + 1} " in full.stderr
    assert f"the last complete checkpoint, step {last}, is intact" in full.stderr
    resumed = _driver(out, "--async")  # space again: the rerun resumes from the last complete checkpoint
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"from step {last}" in resumed.stderr
    assert not list((out / "checkpoints").glob("*tmp*"))
    np.testing.assert_array_equal(_final_w(out), uninterrupted[1])
    assert rows(out) == rows(uninterrupted[0])


@pytest.mark.slow
def test_kill_inside_a_checkpoint_commit_resumes_from_the_previous_one(tmp_path, uninterrupted):
    out = tmp_path / "run"
    killed = _driver(out, "--kill-at", "4")  # SIGKILL once step 4's files are written, before the commit
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert [p.name for p in (out / "checkpoints").iterdir() if "tmp" in p.name]  # the half-done save
    assert sorted(int(p.name) for p in (out / "checkpoints").iterdir() if p.name.isdigit()) == [2, 3]
    resumed = _driver(out)
    assert resumed.returncode == 0 and "resuming" in resumed.stderr and "from step 3" in resumed.stderr
    assert not list((out / "checkpoints").glob("*tmp*"))  # removed when the directory was reopened
    np.testing.assert_array_equal(_final_w(out), uninterrupted[1])


def _main(argv):
    """Driver: the toy loop (see test_reliability_loop) with save_every=1, keep 2, optional faults."""
    import argparse
    import resource
    import signal

    sys.path.insert(0, str(ROOT / "tests"))
    from test_reliability_loop import ToyBody, run_toy

    from coa_jax.train.checkpoint import CheckpointWriteError
    from coa_jax.train.loop import LoopConfig

    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--async", dest="async_save", action="store_true")
    p.add_argument("--fail-at", type=int, default=-1, help="from this step on, files over 4 KiB cannot be written")
    p.add_argument("--kill-at", type=int, default=-1, help="SIGKILL inside the commit of this checkpoint")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", force=True)
    for noisy in ("absl", "orbax", "jax"):
        logging.getLogger(noisy).setLevel(logging.ERROR)

    def fill_disk(step):
        if step == args.fail_at:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() fails with EFBIG instead of a signal
            resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))

    if args.kill_at >= 0:
        from orbax.checkpoint._src.path import atomicity

        finalize = atomicity.AtomicRenameTemporaryPath.finalize

        async def killing_finalize(self):
            if self.get_final().name == str(args.kill_at):
                os.kill(os.getpid(), signal.SIGKILL)
            return await finalize(self)

        atomicity.AtomicRenameTemporaryPath.finalize = killing_finalize
    cfg = LoopConfig(save_every=1, keep_checkpoints=2, async_checkpoint=args.async_save)
    try:
        result = run_toy(args.out, ToyBody(hook=fill_disk), cfg, steps=6)
    except CheckpointWriteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    pathlib.Path(args.out, "final.json").write_text(json.dumps({"w": np.asarray(result.state["w"]).tolist()}))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
