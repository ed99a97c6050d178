"""The runtime's single-process pieces: where the distributed settings come from, the CLI flags,
the process-0 logging filter."""

import logging

import pytest

from coa_jax.config.errors import ConfigError
from coa_jax.runtime import distributed
from coa_jax.runtime.distributed import DistributedSpec, split_cli_flags
from coa_jax.runtime.process import MainProcessFilter, main_first


def test_env_gives_explicit_spec():
    spec = DistributedSpec.from_env({"JAX_COORDINATOR_ADDRESS": "10.0.0.2:1234", "JAX_NUM_PROCESSES": "4",
                                     "JAX_PROCESS_ID": "3", "JAX_LOCAL_DEVICE_IDS": "0,1"})
    assert spec == DistributedSpec("10.0.0.2:1234", 4, 3, (0, 1))
    assert spec.enabled and spec.explicit and not spec.errors()


def test_empty_env_is_single_process_and_auto_is_opt_in():
    assert not DistributedSpec.from_env({}).enabled
    assert distributed.initialize(DistributedSpec()) is False  # nothing to join, nothing touched
    auto = DistributedSpec.from_env({"COA_DISTRIBUTED": "auto"})
    assert auto.enabled and not auto.explicit


@pytest.mark.parametrize("spec, key", [
    (DistributedSpec(coordinator="host:1", num_processes=0), "num_processes"),
    (DistributedSpec(coordinator="host:1", num_processes=2, process_id=2), "process_id"),
    (DistributedSpec(coordinator="nohostport", num_processes=2, process_id=0), "coordinator"),
    (DistributedSpec(num_processes=2, process_id=0), "coordinator"),
])
def test_inconsistent_specs_name_the_setting(spec, key):
    with pytest.raises(ConfigError) as err:
        distributed.initialize(spec)
    assert key in str(err.value)


def test_cli_flags_come_before_the_command_and_override_env():
    flags, rest = split_cli_flags(["--coordinator", "h:9", "--num-processes=2", "--process-id", "1", "sft",
                                   "--process-id", "7"])
    assert rest == ["sft", "--process-id", "7"]  # the command's own arguments are left alone
    env = DistributedSpec.from_env({"JAX_COORDINATOR_ADDRESS": "other:1", "JAX_NUM_PROCESSES": "8",
                                    "JAX_PROCESS_ID": "5"})
    assert env.merged(flags) == DistributedSpec("h:9", 2, 1)
    auto, rest = split_cli_flags(["--distributed", "pipeline"])
    assert auto.auto and rest == ["pipeline"]
    with pytest.raises(ConfigError, match="--num-processes"):
        split_cli_flags(["--num-processes", "two", "sft"])


def test_cli_reports_bad_distributed_flags_as_user_errors(capsys):
    from coa_jax.cli import main

    assert main(["--num-processes", "2", "--process-id", "0", "world", "--out", "x"]) == 2
    assert "coordinator" in capsys.readouterr().err


def test_log_filter_passes_everything_on_process_zero():
    record = logging.LogRecord("coa_jax", logging.INFO, __file__, 1, "hello", (), None)
    assert MainProcessFilter().filter(record) and record.msg == "hello"
    assert main_first("unused", lambda: 7) == 7
