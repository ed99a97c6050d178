"""The multi-host training path on one machine: a short SFT-2 run as a 2-process x 4-device CPU
pod gives the losses of the same run in one process on 8 devices, and the checkpoint the pod
wrote together restores in one process on one device with the pod's logits."""

import json
import pathlib

import jax
import numpy as np
import pytest

from launch_helpers import ROOT, run_group

STEPS = 3
SETS = ["world.size=tiny", f"sft2.steps={STEPS}", "sft2.batch_rows=8", "sft2.max_len=128",
        "sft2.loop.async_checkpoint=false", f"sft2.loop.save_every={STEPS}"]
COMPARED = ("loss", "nll", "count", "grad_norm")


def _metrics(run: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(base dir, config): the world and teacher data built once, then the pod's SFT-2 run."""
    from coa_jax.config.loading import load_config
    from coa_jax.data.world import build_world
    from coa_jax.train import workspace

    base = tmp_path_factory.mktemp("multihost")
    build_world(base / "world", seed=0, size="tiny")
    sets = SETS + [f"world.dir={base / 'world'}"]
    cfg = load_config(str(ROOT / "configs/default.py") + ":tiny", sets)
    workspace.teacher_dir(cfg, base / "world")
    cmd = ["bash", str(ROOT / "launch/local_pod.sh"), "--processes", "2", "--devices", "4", "--timeout", "150", "--",
           "python", "-m", "coa_jax", "sft", "--stage", "2", "--config", "configs/default.py:tiny",
           *[a for s in sets for a in ("--set", s)], "--out", str(base / "pod")]
    res = run_group(cmd, timeout=170)
    assert res.returncode == 0, res.stdout[-4000:]
    assert "[p0] stage sft-2 done" in res.stdout and "[p1] stage sft-2 done" in res.stdout
    return base, cfg


@pytest.mark.slow
def test_pod_losses_equal_one_process_on_eight_devices(runs):
    from coa_jax.train.stages import run_sft

    base, cfg = runs
    assert jax.device_count() == 8 and jax.process_count() == 1
    run_sft(cfg, "2", init="", out=base / "single")
    pod, single = _metrics(base / "pod"), _metrics(base / "single")
    assert [r["step"] for r in pod] == [r["step"] for r in single] == list(range(1, STEPS + 1))
    for a, b in zip(pod, single):  # the same global batches; only the cross-process reduction order may differ
        for key in COMPARED:
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), (a["step"], key, a[key], b[key])


@pytest.mark.slow
def test_pod_checkpoint_restores_on_one_device_with_the_same_logits(runs):
    from coa_jax.config.schema import MeshConfig
    from coa_jax.models.hf_import import read_model_config
    from coa_jax.models.loading import load_model
    from coa_jax.models.params import abstract_params, forward, param_shardings
    from coa_jax.sharding.mesh import make_mesh
    from coa_jax.sharding.rules import TRAINING_RULES, Sharder
    from coa_jax.train.checkpoint import Checkpointer, abstract_with_shardings
    from coa_jax.train.optimizer import make_optimizer
    from coa_jax.train.step import TrainState, optimizer_shardings

    base, cfg = runs
    run = base / "pod"
    one = Sharder(make_mesh(MeshConfig(data=-1), jax.devices()[:1]), TRAINING_RULES)
    model = read_model_config(run / "hf")
    shapes, shardings = abstract_params(model), param_shardings(model, one)
    opt = jax.eval_shape(make_optimizer(cfg.sft2.optim, STEPS).init, shapes)
    target = TrainState(shardings, optimizer_shardings(opt, shapes, shardings), one.replicated())
    ckpt = Checkpointer(run / "checkpoints", async_save=False)
    abstract = TrainState(shapes, opt, jax.ShapeDtypeStruct((), np.int32))
    state, meta, step = ckpt.restore(abstract_with_shardings(abstract, target))
    ckpt.close()
    assert step == STEPS and int(state.step) == STEPS and meta["data"]["position"] > 0
    assert {d for leaf in jax.tree.leaves(state) for d in leaf.devices()} == {jax.devices()[0]}

    tokens = np.random.default_rng(0).integers(0, model.vocab_size, (2, 24)).astype(np.int32)
    positions = np.broadcast_to(np.arange(24, dtype=np.int32), tokens.shape)
    restored = np.asarray(forward(model, state.params, tokens, positions)[0])
    _, exported = load_model(run / "hf", one)  # what the pod's process 0 exported from the gathered weights
    np.testing.assert_array_equal(restored, np.asarray(forward(model, exported, tokens, positions)[0]))
