"""The ahead-of-time check: targets, the real-model configs' shardings at their topologies (traced
and lowered for fake devices: no weights, no hardware), and compiled memory numbers."""

import json

import jax
import pytest

from launch_helpers import ROOT, child_env, run_group

from coa_jax.config.loading import load_config
from coa_jax.runtime.aot import _exhausted_bytes, aot_check
from coa_jax.runtime.targets import GiB, parse_target, tpu_compiler_available

CONFIGS = ROOT / "configs"


def test_targets_know_the_slices_and_hosts():
    v5p = parse_target("v5p-16")
    assert (v5p.platform, v5p.devices, v5p.topology) == ("tpu", 8, ("v5:2x2x2", "megacore", (2, 2, 1)))
    assert parse_target("v4-32").topology[0] == "v4:2x2x4" and parse_target("v4-32").hbm_bytes == 32 * GiB
    assert parse_target("v5e-16").topology == ("v5e:4x4", "default", (2, 2, 1))
    assert (parse_target("h100:8").devices, parse_target("h100:8").hbm_bytes) == (8, 80 * GiB)
    assert parse_target("4") == parse_target("cpu:4")
    for bad in ("v5p-12", "tpu-8", "h100"):
        with pytest.raises(ValueError):
            parse_target(bad)


def test_a_compiler_refusal_is_read_as_a_size():
    msg = ("RESOURCE_EXHAUSTED: Ran out of memory on HBM, the total memory required for HLO temporaries (862.68G) "
           "exceeds available HBM (95.74G).")
    assert _exhausted_bytes(msg) == int(862.68 * GiB) and _exhausted_bytes("INTERNAL: other") is None


# (config:variant, target): every real-model config at a slice or host it is meant for (8 devices here)
PLANS = [("r1_distill_qwen_7b.py:v5p-16", "v5p-16"), ("r1_distill_qwen_7b.py:gpu8", "h100:8"),
         ("r1_distill_qwen_1_5b.py:v5p-16", "v5p-16"), ("qwen2_5_7b_instruct.py:gpu8", "a100:8"),
         ("qwen2_5_1_5b_instruct.py:v5p-16", "v5p-16"), ("smollm2_135m.py", "cpu:8")]


@pytest.mark.parametrize("spec, target", PLANS, ids=[p[0] for p in PLANS])
def test_real_model_configs_lower_for_their_topology(spec, target):
    cfg = load_config(str(CONFIGS / spec))
    report = aot_check(cfg, parse_target(target), mode="cpu", programs=("prefill", "decode"), compile=False)
    assert report.mode == "lowered" and sum(report.mesh.values()) > 0
    assert report.resident["params (training layout)"] > 0 and report.resident["KV cache + sampler state"] > 0
    if report.target.hbm_bytes:  # what stays on a device during RL leaves room for the steps' temporaries
        assert report.resident["total (one mesh, RL)"] < 0.7 * report.target.hbm_bytes, report.table()


@pytest.mark.slow
def test_the_paper_train_step_lowers_on_a_v5p16_slice():
    cfg = load_config(str(CONFIGS / "r1_distill_qwen_7b.py:v5p-16"))
    report = aot_check(cfg, parse_target("v5p-16"), mode="cpu", programs=("sft2",), compile=False)
    # FSDP over 8 chips: float32 weights 30.5 GB -> 1/8 each; Adam's two moments twice that
    assert report.resident["params (training layout)"] == pytest.approx(7_615_616_512 * 4 / 8, rel=0.01)
    assert report.resident["optimizer state"] == pytest.approx(2 * report.resident["params (training layout)"],
                                                               rel=0.01)


@pytest.mark.slow
def test_v4_32_needs_sixteen_devices_and_the_cli_provides_them(tmp_path):
    out = tmp_path / "aot.json"
    res = run_group(["python", str(ROOT / "launch/aot_check.py"), "--config",
                     str(CONFIGS / "r1_distill_qwen_7b.py:v4-32"), "--topology", "v4-32", "--mode", "cpu",
                     "--lower-only", "--programs", "prefill,decode", "--json", str(out)], timeout=120)
    assert res.returncode == 0, res.stdout[-3000:]
    report = json.loads(out.read_text())
    assert report["mesh"] == {"data": 1, "fsdp": 4, "tensor": 4} and report["target"]["devices"] == 16
    assert report["resident"]["total (one mesh, RL)"] < 32 * GiB
    assert "traced and lowered only" in res.stdout


def test_compiled_memory_is_reported_per_device():
    cfg = load_config(str(CONFIGS / "default.py:tiny"))
    report = aot_check(cfg, parse_target("cpu:8"), programs=("decode",))
    assert report.mode == "cpu" and jax.device_count() == 8
    (decode,) = report.programs
    assert decode.argument > 0 and decode.peak >= decode.argument
    assert "CPU stand-in" in report.table() and report.fits() is None  # no HBM size for a CPU target
    assert report.to_dict()["programs"][0]["peak"] == decode.peak


@pytest.mark.skipif(not tpu_compiler_available(), reason="libtpu is not installed (pip install libtpu)")
def test_the_tpu_compiler_compiles_for_a_v5p16_slice(tmp_path):
    res = run_group(["python", str(ROOT / "launch/aot_check.py"), "--config", str(CONFIGS / "default.py:tiny"),
                     "--set", "mesh.data=8", "--topology", "v5p-16", "--programs", "decode"], timeout=300,
                    env=child_env())
    assert res.returncode == 0, res.stdout[-3000:]
    assert "compiled by the TPU compiler" in res.stdout and "| decode |" in res.stdout and "fits" in res.stdout
