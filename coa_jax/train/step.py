"""The jitted train step: token-weighted gradient accumulation, NaN/Inf guard, explicit shardings.

`loss_fn(params, microbatch) -> (loss_sum, count, {metric: (sum, count)})`. The step scans over
the leading microbatch axis, accumulates gradients of the *sums* in float32, and divides once by
the total count, so unequal microbatches are weighted by their tokens (not a mean of means). A
non-finite loss or gradient skips the update (params and optimizer state kept) and is reported.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax

from coa_jax.models.params import Params


@flax.struct.dataclass
class TrainState:
    params: Params
    opt_state: optax.OptState
    step: jax.Array  # updates applied so far (skipped steps not counted)


def init_train_state(params: Params, optimizer: optax.GradientTransformation, param_shardings) -> TrainState:
    """Optimizer state created under jit, sharded like the params it mirrors."""
    abstract = jax.eval_shape(optimizer.init, params)
    opt_shardings = optimizer_shardings(abstract, params, param_shardings)
    opt_state = jax.jit(optimizer.init, out_shardings=opt_shardings)(params)
    mesh = jax.tree.leaves(param_shardings)[0].mesh
    step = jax.device_put(jnp.zeros((), jnp.int32), jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))
    return TrainState(params=params, opt_state=opt_state, step=step)


def optimizer_shardings(abstract_opt_state, params, param_shardings):
    """Each optimizer leaf whose key path ends with a param's path (Adam moments, also inside
    masked/multi-transform states) takes that param's sharding; the rest (counts) is replicated."""
    mesh = jax.tree.leaves(param_shardings)[0].mesh
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    by_path = {}
    for (path, leaf), sharding in zip(jax.tree_util.tree_leaves_with_path(params), jax.tree.leaves(param_shardings)):
        by_path[_keys(path)] = (tuple(leaf.shape), sharding)

    def pick(path, leaf):
        keys = _keys(path)
        for start in range(len(keys)):
            hit = by_path.get(keys[start:])
            if hit is not None and hit[0] == tuple(leaf.shape):
                return hit[1]
        return replicated

    return jax.tree_util.tree_map_with_path(pick, abstract_opt_state)


def _keys(path) -> tuple[str, ...]:
    return tuple(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def make_train_step(loss_fn: Callable, optimizer: optax.GradientTransformation, state_shardings, batch_shardings):
    """Build the jitted step(state, batch) -> (state, metrics); batch leaves are [A, micro_B, ...]."""

    def step(state: TrainState, batch):
        params = state.params
        zero_grads = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), params)

        def micro(carry, mb):
            grads_acc, total_acc, count_acc, metrics_acc = carry
            (total, (count, metrics)), grads = jax.value_and_grad(
                lambda p: _split(loss_fn(p, mb)), has_aux=True)(params)
            grads_acc = jax.tree.map(lambda a, g: a + g.astype(jnp.float32), grads_acc, grads)
            metrics_acc = jax.tree.map(jnp.add, metrics_acc, metrics)
            return (grads_acc, total_acc + total, count_acc + count, metrics_acc), None

        first = jax.tree.map(lambda x: x[0], batch)
        _, (_, metric_shapes) = jax.eval_shape(lambda: _split(loss_fn(params, first)))
        zero_metrics = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), metric_shapes)
        init = (zero_grads, jnp.float32(0), jnp.float32(0), zero_metrics)
        (grads_sum, total, count, metric_sums), _ = jax.lax.scan(micro, init, batch)
        denom = jnp.maximum(count, 1.0)
        grads = jax.tree.map(lambda g, p: (g / denom).astype(p.dtype), grads_sum, params)
        loss = total / denom
        grad_norm = optax.global_norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        updates, new_opt = optimizer.update(grads, state.opt_state, params)
        new_params = optax.apply_updates(params, updates)
        keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
        new_state = TrainState(params=keep(new_params, params), opt_state=keep(new_opt, state.opt_state),
                               step=state.step + finite.astype(jnp.int32))
        metrics = {name: s / jnp.maximum(c, 1.0) for name, (s, c) in metric_sums.items()}
        metrics.update(loss=loss, grad_norm=grad_norm, count=count, skipped=(~finite).astype(jnp.int32))
        return new_state, metrics

    return jax.jit(step, in_shardings=(state_shardings, batch_shardings), out_shardings=(state_shardings, None),
                   donate_argnums=(0,))


def _split(out):
    total, count, metrics = out
    return total, (count, metrics)
