"""The launchers: the TPU pod's dry run, the CPU "pod" (2 processes x 4 devices), the GPU host on CPU."""

import pytest

from launch_helpers import ROOT, child_env, run_group


def _tpu(*args):
    return run_group(["bash", str(ROOT / "launch/tpu_pod.sh"), "--dry-run", *args], timeout=30)


def test_tpu_pod_dry_run_prints_the_whole_v5p16_sequence():
    res = _tpu("--name", "coa", "--zone", "us-east5-a", "--type", "v5p-16", "--project", "p1", "up", "--",
               "sft", "--stage", "2", "--config", "configs/r1_distill_qwen_7b.py:v5p16", "--out", "/mnt/shared/sft2")
    assert res.returncode == 0, res.stdout
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 6, res.stdout
    create, tar, scp, setup, run, tail = lines
    where = "--zone=us-east5-a --project=p1"
    assert create == f"gcloud compute tpus tpu-vm create coa {where} --accelerator-type=v5p-16 --version=v2-alpha-tpuv5"
    assert tar.startswith("tar -czf /tmp/coa_jax-coa.tgz --exclude=.venv")
    assert scp == f"gcloud compute tpus tpu-vm scp /tmp/coa_jax-coa.tgz coa:coa_jax.tgz {where} --worker=all"
    assert setup.startswith(f"gcloud compute tpus tpu-vm ssh coa {where} --worker=all --command ")
    assert "bash launch/env.sh" in setup and '"jax[tpu]==' in setup
    assert run.startswith(f"gcloud compute tpus tpu-vm ssh coa {where} --worker=all --command ")
    assert ("python -m coa_jax --distributed sft --stage 2 --config configs/r1_distill_qwen_7b.py:v5p16 "
            "--out /mnt/shared/sft2 > run.log 2>&1 < /dev/null &") in run
    assert tail == f"gcloud compute tpus tpu-vm ssh coa {where} --worker=0 --command 'tail -n +1 -F ~/coa_jax/run.log'"
    delete = _tpu("--name", "coa", "--zone", "us-east5-a", "delete").stdout.strip()
    assert delete == "gcloud compute tpus tpu-vm delete coa --zone=us-east5-a --quiet"


def test_tpu_pod_refuses_missing_settings():
    res = _tpu("--name", "coa", "run")
    assert res.returncode == 2 and "--zone" in res.stdout


def test_local_pod_runs_a_collective_across_two_processes():
    res = run_group(["bash", str(ROOT / "launch/local_pod.sh"), "--processes", "2", "--devices", "4", "--timeout",
                     "80", "--", "python", "-m", "coa_jax.runtime.selfcheck"], timeout=90)
    assert res.returncode == 0, res.stdout
    for k in (0, 1):  # each process saw 4 local of 8 global devices; the sum went through both processes
        assert f"[p{k}] process {k}/2: 4 local, 8 global cpu devices; sum=12 (want 12) ok" in res.stdout


def test_local_pod_stops_the_others_when_one_fails():
    script = 'if [ "$JAX_PROCESS_ID" = 1 ]; then exit 3; fi; exec sleep 60'
    res = run_group(["bash", str(ROOT / "launch/local_pod.sh"), "--processes", "2", "--", "bash", "-c", script],
                    timeout=30)
    assert res.returncode == 3 and "stopping the others" in res.stdout


@pytest.mark.slow
def test_gpu_host_launcher_runs_a_stage_on_the_cpu_backend(tmp_path):
    res = run_group(["bash", str(ROOT / "launch/gpu_host.sh"), "--platform", "cpu", "sft", "--stage", "2",
                     "--config", "configs/default.py:tiny", "--set", "world.size=tiny", "--set", "sft2.steps=2",
                     "--set", "sft2.batch_rows=4", "--set", "sft2.max_len=128", "--out", str(tmp_path / "sft2")],
                    timeout=120, env=child_env(XLA_FLAGS="--xla_force_host_platform_device_count=2"))
    assert res.returncode == 0, res.stdout[-3000:]
    assert (tmp_path / "sft2" / "hf" / "config.json").exists()
