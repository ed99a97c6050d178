"""`python -m coa_jax.runtime.selfcheck`: join the run and check that every device takes part.

The first thing to run on a new pod (or through `launch/local_pod.sh`): each process contributes
one value per local device (its process index + 1); a jitted sum over a mesh of all devices must
equal the known total on every process. Prints one line per process; exit 1 on a wrong total.
"""

from __future__ import annotations

import sys

from coa_jax.runtime.distributed import DistributedSpec, initialize, split_cli_flags


def main(argv: list[str] | None = None) -> int:
    flags, _ = split_cli_flags(sys.argv[1:] if argv is None else argv)
    initialize(DistributedSpec.from_env().merged(flags))
    import jax
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec

    mesh = jax.make_mesh((jax.device_count(),), ("devices",), axis_types=(jax.sharding.AxisType.Auto,))
    local = np.full((jax.local_device_count(),), jax.process_index() + 1, np.float32)
    values = jax.make_array_from_process_local_data(NamedSharding(mesh, PartitionSpec("devices")), local)
    total = float(jax.jit(lambda v: v.sum(), out_shardings=NamedSharding(mesh, PartitionSpec()))(values))
    # Every process holds the same number of devices in the pods this checks.
    want = sum((p + 1) * jax.local_device_count() for p in range(jax.process_count()))
    ok = total == want
    print(f"process {jax.process_index()}/{jax.process_count()}: {jax.local_device_count()} local, "
          f"{jax.device_count()} global {jax.default_backend()} devices; sum={total:g} (want {want:g}) "
          f"{'ok' if ok else 'WRONG'}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
