"""Running launcher scripts and multi-process pods from tests: timeouts that kill the whole group."""

import os
import pathlib
import signal
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def child_env(**extra) -> dict:
    """The test environment for a child (no inherited device count: launchers set their own)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PATH=f"{pathlib.Path(sys.executable).parent}:{os.environ['PATH']}")
    env.pop("XLA_FLAGS", None)
    env.update(extra)
    return env


def run_group(cmd: list[str], *, timeout: float, env: dict | None = None, cwd=ROOT) -> subprocess.CompletedProcess:
    """Run `cmd` in its own process group; on timeout kill the group (children included) and fail."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env or child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise AssertionError(f"{' '.join(cmd)} timed out after {timeout}s; output:\n{out[-4000:]}") from None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "")
