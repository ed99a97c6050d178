"""The multi-process runtime: joining a pod, process-0 duties, host-local rows into global arrays.

    from coa_jax.runtime.distributed import DistributedSpec, initialize
    from coa_jax.runtime.process import is_main

    initialize(DistributedSpec.from_env())   # before anything touches a device; no-op alone
    if is_main():
        write_report(...)

Modules: `distributed` (jax.distributed from flags/env/auto-detect; imports no JAX until used, so
the CLI stays light), `process` (is_main, logging filter, barriers), `global_batch` (each process
builds only its rows of a batch), `placement` (policy/reference/rollout on one mesh or separate
device sets), `targets` and `aot` (the ahead-of-time fit check), `selfcheck` (a pod smoke test).
"""
