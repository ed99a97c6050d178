"""Join a multi-process JAX run (TPU pod, GPU cluster, CPU "pod") before any device is touched.

Where the settings come from, first match wins:
  1. explicit: coordinator address + process count + process id, from the CLI's global flags
     (`python -m coa_jax --coordinator H:P --num-processes N --process-id K COMMAND ...`) or the
     environment (`JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`, optional
     `JAX_LOCAL_DEVICE_IDS`);
  2. auto: `--distributed` or `COA_DISTRIBUTED=auto`: `jax.distributed.initialize()` with no
     arguments, which detects Cloud TPU pod workers, SLURM, Open MPI and Kubernetes jobs;
  3. neither: one process; nothing to do.

On the CPU backend, cross-process collectives go through gloo (the CPU "pod" of
`launch/local_pod.sh`). The module imports JAX only inside `initialize`, so the CLI stays light.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence

from coa_jax.config.errors import ConfigError

log = logging.getLogger(__name__)

AUTO_VALUES = ("1", "auto", "true", "yes")


@dataclasses.dataclass(frozen=True)
class DistributedSpec:
    """How this process joins the run; `enabled` is False for a plain single-process run."""

    coordinator: str = ""  # host:port of process 0's coordination service
    num_processes: int = 0
    process_id: int = -1
    local_device_ids: tuple[int, ...] | None = None
    auto: bool = False  # let jax detect the cluster (TPU pod, SLURM, Open MPI, Kubernetes)
    timeout_s: int = 300  # how long to wait for every process to join

    @property
    def enabled(self) -> bool:
        return self.auto or bool(self.coordinator)

    @property
    def explicit(self) -> bool:
        return bool(self.coordinator)

    def errors(self) -> list[tuple[str, str]]:
        out = []
        if self.coordinator and ":" not in self.coordinator:
            out.append(("coordinator", f"must be host:port, got {self.coordinator!r}"))
        if self.explicit:
            if self.num_processes <= 0:
                out.append(("num_processes", "an explicit coordinator needs the number of processes "
                                             "(--num-processes / JAX_NUM_PROCESSES)"))
            elif not 0 <= self.process_id < self.num_processes:
                out.append(("process_id", f"must be in [0, {self.num_processes}) "
                                          f"(--process-id / JAX_PROCESS_ID), got {self.process_id}"))
        elif not self.auto and (self.num_processes > 0 or self.process_id >= 0):
            out.append(("coordinator", "--num-processes/--process-id need --coordinator "
                                       "(or JAX_COORDINATOR_ADDRESS), or use --distributed to auto-detect"))
        return out

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DistributedSpec:
        """The settings the environment gives (all unset: a single-process spec)."""
        env = os.environ if environ is None else environ
        ids = env.get("JAX_LOCAL_DEVICE_IDS", "").strip()
        try:
            return cls(coordinator=env.get("JAX_COORDINATOR_ADDRESS", "").strip(),
                       num_processes=int(env.get("JAX_NUM_PROCESSES", "0") or 0),
                       process_id=int(env.get("JAX_PROCESS_ID", "-1") or -1),
                       local_device_ids=tuple(int(i) for i in ids.split(",")) if ids else None,
                       auto=env.get("COA_DISTRIBUTED", "").strip().lower() in AUTO_VALUES,
                       timeout_s=int(env.get("COA_DISTRIBUTED_TIMEOUT_S", "300") or 300))
        except ValueError as err:
            raise ConfigError([("environment", f"bad JAX_NUM_PROCESSES / JAX_PROCESS_ID / "
                                               f"JAX_LOCAL_DEVICE_IDS value: {err}")]) from err

    def merged(self, flags: DistributedSpec) -> DistributedSpec:
        """`flags` (the command line) over `self` (the environment), field by field where set."""
        default = DistributedSpec()
        changes = {f.name: getattr(flags, f.name) for f in dataclasses.fields(self)
                   if getattr(flags, f.name) != getattr(default, f.name)}
        return dataclasses.replace(self, **changes)


# The CLI's global flags, given before the command name.
_VALUE_FLAGS = {"--coordinator": ("coordinator", str), "--num-processes": ("num_processes", int),
                "--process-id": ("process_id", int)}
CLI_HELP = ("multi-process: --distributed (auto-detect a TPU pod / SLURM / MPI job) or "
            "--coordinator HOST:PORT --num-processes N --process-id K, before COMMAND")


def split_cli_flags(argv: Sequence[str]) -> tuple[DistributedSpec, list[str]]:
    """Take the leading global flags off `argv`: (spec from flags, the rest starting at the command).

    Raises:
      ConfigError: a flag without its value or with a malformed one.
    """
    fields: dict = {}
    rest = list(argv)
    while rest and rest[0].startswith("--") and rest[0].split("=", 1)[0] in (*_VALUE_FLAGS, "--distributed"):
        flag, eq, value = rest.pop(0).partition("=")
        if flag == "--distributed":
            fields["auto"] = True
            continue
        if not eq:
            if not rest:
                raise ConfigError([(flag, "needs a value")])
            value = rest.pop(0)
        name, kind = _VALUE_FLAGS[flag]
        try:
            fields[name] = kind(value)
        except ValueError as err:
            raise ConfigError([(flag, f"bad value {value!r}")]) from err
    return DistributedSpec(**fields), rest


def initialize(spec: DistributedSpec) -> bool:
    """Join the run described by `spec`; True if this process is now part of a multi-process run.

    Idempotent; a disabled spec does nothing. Must run before any JAX computation.
    Raises:
      ConfigError: an inconsistent spec (naming the flag / variable to fix).
    """
    problems = spec.errors()
    if problems:
        raise ConfigError(problems)
    if not spec.enabled:
        return False
    import jax

    if jax.distributed.is_initialized():
        return True
    # Only affects the CPU client; there it is what makes psum/all-gather cross processes.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if spec.explicit:
        jax.distributed.initialize(spec.coordinator, spec.num_processes, spec.process_id,
                                   local_device_ids=list(spec.local_device_ids) if spec.local_device_ids else None,
                                   initialization_timeout=spec.timeout_s)
    else:
        jax.distributed.initialize(initialization_timeout=spec.timeout_s)
    log.info("joined as process %d of %d: %d local / %d global devices (%s)", jax.process_index(),
             jax.process_count(), jax.local_device_count(), jax.device_count(), jax.default_backend())
    return True
