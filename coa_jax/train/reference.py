"""The frozen reference policy of GRPO: sharded like the policy, or offloaded to host memory.

With `offload`, the reference weights live in the devices' pinned host memory (same shardings,
memory kind "pinned_host") and are copied to device memory only while the reference log-probs
are computed, once per step; device memory then holds one copy of the weights instead of two.
Works the same in one process and across hosts (every process moves only its own shards).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from coa_jax.models.params import Params

HOST_MEMORY = "pinned_host"


class ReferenceModel:
    """Holds a frozen copy of `params` (the train state's copy is donated at every update)."""

    def __init__(self, params: Params, *, offload: bool = False, home: Params | None = None):
        """`home`: shardings on another device set (e.g. the rollout's) to keep the weights on;
        they are copied to the policy's shardings (those of `params`) when used."""
        self.offload = offload
        self._device_shardings = jax.tree.map(lambda x: x.sharding, params)
        self._away = home is not None
        if offload:
            base = home if home is not None else self._device_shardings
            host = jax.tree.map(lambda s: s.with_memory_kind(HOST_MEMORY), base)
            self._params = jax.device_put(params, host)  # a copy: the policy's buffers stay its own
        elif home is not None:
            self._params = jax.device_put(params, home)
        else:
            self._params = jax.tree.map(jnp.copy, params)

    def params(self) -> Params:
        """The weights in device memory (a transient copy when offloaded)."""
        if not self.offload and not self._away:
            return self._params
        return jax.device_put(self._params, self._device_shardings)

    def device_bytes(self) -> int:
        """Bytes of the policy devices' memory the reference occupies between uses (0 when offloaded
        or kept on another device set)."""
        if self.offload or self._away:
            return 0
        return sum(x.nbytes for x in jax.tree.leaves(self._params))

    def memory_kinds(self) -> set[str]:
        return {x.sharding.memory_kind for x in jax.tree.leaves(self._params)}
