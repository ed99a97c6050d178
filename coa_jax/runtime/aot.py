"""Ahead-of-time check: compile a config's jitted steps for a target topology; memory per device.

    target = parse_target("v5p-16")               # or "v4-32", "v6e-16", "gpu:8", "cpu:4"
    report = aot_check(cfg, target)               # no weights, no data: abstract shapes only
    print(report.table())

Two ways to compile, and the report says which one it used:
  "tpu"  the TPU compiler itself (libtpu installed, no TPU needed) compiles for the slice's real
         topology; XLA:TPU's memory analysis is what the pod will see.
  "cpu"  a stand-in: XLA:CPU compiles the same sharded programs for as many fake CPU devices
         (the mesh, partition specs and collectives are the pod's; per-device temporaries are
         XLA:CPU's, which fuses and pads differently). Used for GPU hosts and when libtpu is absent.
Either way the resident rows (weights, optimizer state, KV cache per device) are computed from
the shardings and are exact.

Programs (the worst-case shapes of a run): sft1 (contrastive pair step), sft2 (next-token step),
grpo (the policy update at the longest row bucket), logprobs (old/reference log-probs of a whole
rollout batch), prefill (a prompt appended to the KV cache), decode (one decode segment).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re

import jax
import jax.numpy as jnp

from coa_jax.config.schema import Config
from coa_jax.models.params import abstract_params, compute_dtype_params, param_shardings
from coa_jax.rollout.generate import bucket
from coa_jax.rollout.sampler import HALT, DecodeResult, Sampler, SamplerShape
from coa_jax.runtime.targets import GiB, Target, tpu_compiler_available
from coa_jax.sharding.mesh import make_mesh
from coa_jax.sharding.rules import SAMPLING_RULES, TRAINING_RULES, Sharder
from coa_jax.train.grpo_loss import grpo_loss
from coa_jax.train.logprobs import microbatched_logprobs, token_logprobs
from coa_jax.train.optimizer import make_optimizer
from coa_jax.train.sft import contrastive_loss_fn, next_token_loss_fn
from coa_jax.train.step import TrainState, make_train_step, optimizer_shardings

PROGRAMS = ("sft1", "sft2", "grpo", "logprobs", "prefill", "decode")

def target_devices(target: Target, mode: str) -> list:
    """The devices to compile for: the TPU topology's (mode "tpu") or fake CPU devices ("cpu")."""
    if mode == "tpu":
        from jax.experimental import topologies

        name, chip_config, host = target.topology
        return list(topologies.get_topology_desc(platform="tpu", topology_name=name, chip_config_name=chip_config,
                                                 chips_per_host_bounds=host, num_slices=1).devices)
    cpus = jax.devices("cpu")
    if len(cpus) < target.devices:
        raise RuntimeError(f"{target.name} needs {target.devices} CPU stand-in devices, this process has "
                           f"{len(cpus)}: start it with XLA_FLAGS=--xla_force_host_platform_device_count="
                           f"{target.devices} (launch/aot_check.py does)")
    return cpus[: target.devices]


@dataclasses.dataclass(frozen=True)
class ProgramMemory:
    """XLA's memory analysis of one compiled program, bytes per device."""

    name: str
    shape: str  # the batch shape it was compiled for
    argument: int
    output: int
    temp: int
    alias: int  # outputs written into donated arguments
    refused: bool = False  # the compiler refused it: `temp` is what it said the temporaries need

    @property
    def peak(self) -> int:
        return self.argument + self.output + self.temp - self.alias


@dataclasses.dataclass
class AotReport:
    target: Target
    mode: str  # tpu | cpu | lowered (traced and lowered only, nothing compiled)
    mesh: dict[str, int]
    programs: list[ProgramMemory]
    resident: dict[str, int]  # analytic bytes per device of what stays on device

    def fits(self) -> bool | None:
        """Every compiled program's peak within HBM (None: HBM unknown or nothing compiled)."""
        if not self.target.hbm_bytes or not self.programs:
            return None
        return all(p.peak <= self.target.hbm_bytes for p in self.programs)

    def table(self) -> str:
        how = {"tpu": "compiled by the TPU compiler for the slice's topology",
               "cpu": f"CPU stand-in: XLA:CPU compiled the same sharded programs for {self.target.devices} fake "
                      "devices (temporaries are XLA:CPU's; resident rows are exact)",
               "lowered": "traced and lowered only (shardings checked, nothing compiled)"}[self.mode]
        hbm = f"{self.target.hbm_bytes / GiB:.0f} GiB HBM per device" if self.target.hbm_bytes else "HBM unknown"
        lines = [f"target {self.target.name}: {self.target.devices} devices, {hbm}; mesh "
                 + " x ".join(f"{k}={v}" for k, v in self.mesh.items()), f"mode: {how}", "",
                 "| resident per device | bytes |", "|---|---|"]
        lines += [f"| {k} | {_size(v)} |" for k, v in self.resident.items()]
        if self.programs:
            lines += ["", "| program | shape | arguments | temporaries | outputs | peak | fits |",
                      "|---|---|---|---|---|---|---|"]
            for p in self.programs:
                fits = "?" if not self.target.hbm_bytes else ("yes" if p.peak <= self.target.hbm_bytes else "NO")
                if p.refused:
                    lines.append(f"| {p.name} | {p.shape} | - | {_size(p.temp)} | - | > HBM | NO (compiler refused) |")
                    continue
                lines.append(f"| {p.name} | {p.shape} | {_size(p.argument)} | {_size(p.temp)} | {_size(p.output)} | "
                             f"{_size(p.peak)} | {fits} |")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"target": dataclasses.asdict(self.target), "mode": self.mode, "mesh": self.mesh,
                "resident": self.resident, "fits": self.fits(),
                "programs": [dict(dataclasses.asdict(p), peak=p.peak) for p in self.programs]}


def _exhausted_bytes(message: str) -> int | None:
    """Bytes from XLA's "HLO temporaries (862.68G) exceeds available HBM" refusal, or None."""
    m = re.search(r"RESOURCE_EXHAUSTED.*?\(([\d.]+)([KMGT])\)", message, re.S)
    if not m:
        return None
    return int(float(m.group(1)) * {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[m.group(2)])


def _size(n: int) -> str:
    return f"{n / GiB:.2f} GiB" if n >= GiB else f"{n / (1 << 20):.1f} MiB"


def _bytes_per_device(tree) -> int:
    """Bytes one device holds of a pytree of ShapeDtypeStructs carrying shardings (the largest shard)."""
    return sum(math.prod(x.sharding.shard_shape(x.shape)) * jnp.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def _abstract(tree, shardings):
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


def _batch(sharder: Sharder, arrays: dict[str, tuple[tuple[int, ...], object]]):
    """Abstract [A, b, T] / [A, b] batch leaves, sharded like the stage bodies shard them."""
    names = {2: (None, "batch"), 3: (None, "batch", "length")}
    out, shardings = {}, {}
    for k, (shape, dtype) in arrays.items():
        shardings[k] = sharder.sharding(names[len(shape)], shape)
        out[k] = jax.ShapeDtypeStruct(shape, dtype, sharding=shardings[k])
    return out, shardings


def aot_check(cfg: Config, target: Target, *, mode: str | None = None, programs=PROGRAMS,
              compile: bool = True) -> AotReport:
    """Compile (or only lower) the run's programs for `target`; memory per device.

    mode: "tpu" or "cpu" (default: "tpu" for a TPU slice when libtpu is installed, else "cpu").
    compile: False traces and lowers only (fast; checks every sharding, no memory analysis).
    """
    mode = mode or ("tpu" if target.platform == "tpu" and tpu_compiler_available() else "cpu")
    devices = target_devices(target, mode)
    mesh = make_mesh(cfg.mesh, devices)
    train, sample = Sharder(mesh, TRAINING_RULES), Sharder(mesh, SAMPLING_RULES)
    model = cfg.model
    params = _abstract(abstract_params(model), param_shardings(model, train))
    optimizer = make_optimizer(cfg.sft2.optim, 1000, params)
    opt = jax.eval_shape(optimizer.init, params)
    opt = _abstract(opt, optimizer_shardings(opt, params, jax.tree.map(lambda x: x.sharding, params)))
    state = TrainState(params, opt, jax.ShapeDtypeStruct((), jnp.int32, sharding=train.replicated()))
    state_shardings = jax.tree.map(lambda x: x.sharding, state)
    sampler = Sampler(model, sample, SamplerShape(cfg.rollout.batch_slots, cfg.rollout.cache_len,
                                                  cfg.rollout.segment_steps),
                      cfg.rollout.sampling, [[0, 1]], stop_kinds=[HALT])
    # the sampler holds its weights in the compute dtype (Sampler.prepare)
    sampler_params = _abstract(jax.eval_shape(functools.partial(compute_dtype_params, model), abstract_params(model)),
                               sampler.param_shardings)
    sampler_state = jax.eval_shape(sampler.init_state)
    sampler_state = _abstract(sampler_state, sampler.state_shardings)
    resident = {"params (training layout)": _bytes_per_device(params),
                "optimizer state": _bytes_per_device(opt),
                "reference params (RL)": _bytes_per_device(params),
                "params (sampling layout)": _bytes_per_device(sampler_params),
                "KV cache + sampler state": _bytes_per_device(sampler_state)}
    resident["total (one mesh, RL)"] = sum(resident.values())
    builders = {"sft1": lambda: _sft1(cfg, train, state_shardings),
                "sft2": lambda: _sft2(cfg, train, state_shardings),
                "grpo": lambda: _grpo(cfg, train, state_shardings),
                "logprobs": lambda: _logprobs(cfg, train, params),
                "prefill": lambda: _prefill(cfg, sampler),
                "decode": lambda: _decode(cfg, sampler)}
    args = {"sft1": (state,), "sft2": (state,), "grpo": (state,), "logprobs": (params,),
            "prefill": (sampler_params, sampler_state), "decode": (sampler_params, sampler_state)}
    out = []
    for name in programs:
        fn, extra, shape = builders[name]()
        lowered = fn.trace(*args[name], *extra).lower()
        if not compile:
            continue
        try:
            mem = lowered.compile().memory_analysis()
        except jax.errors.JaxRuntimeError as err:  # the TPU compiler refuses programs that exceed HBM
            need = _exhausted_bytes(str(err))
            if need is None:
                raise
            out.append(ProgramMemory(name, shape, 0, 0, need, 0, refused=True))
            continue
        out.append(ProgramMemory(name, shape, mem.argument_size_in_bytes, mem.output_size_in_bytes,
                                 mem.temp_size_in_bytes, mem.alias_size_in_bytes))
    return AotReport(target, mode if compile else "lowered", dict(mesh.shape), out, resident)


def _sft2(cfg: Config, sharder: Sharder, state_shardings):
    sc = cfg.sft2
    shape = (sc.micro_batches, sc.batch_rows // sc.micro_batches, sc.max_len)
    batch, shardings = _batch(sharder, {"tokens": (shape, jnp.int32), "positions": (shape, jnp.int32),
                                        "segments": (shape, jnp.int32), "mask": (shape, jnp.float32)})
    step = make_train_step(next_token_loss_fn(cfg.model, sharder), make_optimizer(sc.optim, 1000), state_shardings,
                           shardings)
    return step, (batch,), "x".join(map(str, shape))


def _sft1(cfg: Config, sharder: Sharder, state_shardings):
    sc = cfg.sft1
    shape = (sc.micro_batches, sc.batch_rows // sc.micro_batches, bucket(sc.max_len))
    spec = {f"{h}_{k}": (shape, jnp.float32 if k == "mask" else jnp.int32)
            for h in "cr" for k in ("tokens", "positions", "segments", "mask")}
    spec["valid"] = (shape[:2], jnp.float32)
    batch, shardings = _batch(sharder, spec)
    step = make_train_step(contrastive_loss_fn(cfg.model, sharder, sc.contrastive), make_optimizer(sc.optim, 1000),
                           state_shardings, shardings)
    return step, (batch,), "2x" + "x".join(map(str, shape))


def _grpo_length(cfg: Config) -> int:
    return bucket(cfg.rollout.cache_len)


def _grpo(cfg: Config, sharder: Sharder, state_shardings):
    # The same loss as GRPOBody._train_step, at the longest row bucket a rollout can produce.
    rl = cfg.rl
    rows = rl.prompts_per_step * rl.group_size
    shape = (rl.micro_batches, rows // rl.micro_batches, _grpo_length(cfg))
    spec = {k: (shape, jnp.int32) for k in ("tokens", "positions", "segments")}
    spec.update({k: (shape, jnp.float32) for k in ("old_logp", "ref_logp", "policy_mask", "response_mask")})
    spec["adv"] = (shape[:2], jnp.float32)
    batch, shardings = _batch(sharder, spec)
    model, grpo, temp = cfg.model, rl.grpo, cfg.rollout.temperature

    def loss_fn(params, mb):
        logp, ent = token_logprobs(model, params, mb["tokens"], mb["positions"], mb["segments"], sharder, temp,
                                   with_entropy=True)
        return grpo_loss(logp, mb["old_logp"], mb["ref_logp"], mb["adv"], mb["policy_mask"], mb["response_mask"],
                         grpo, ent)

    step = make_train_step(loss_fn, make_optimizer(rl.optim, rl.steps), state_shardings, shardings)
    return step, (batch,), "x".join(map(str, shape))


def _logprobs(cfg: Config, sharder: Sharder, params):
    # GRPOBody._logprob_fn: old and reference log-probs of the rollout batch, one microbatch at a time
    rows, length, micro = cfg.rl.prompts_per_step * cfg.rl.group_size, _grpo_length(cfg), cfg.rl.micro_batches
    fn = microbatched_logprobs(cfg.model, sharder, cfg.rollout.temperature, micro, rows, length,
                               jax.tree.map(lambda a: a.sharding, params))
    sh = sharder.sharding((None, "batch", "length"), (micro, rows // micro, length))
    x = jax.ShapeDtypeStruct((micro, rows // micro, length), jnp.int32, sharding=sh)
    return fn, (x, x, x), f"{micro} x {rows // micro}x{length}"


def _prefill(cfg: Config, sampler: Sampler):
    b, c = sampler.shape.batch, cfg.rollout.max_prompt_tokens
    fn = jax.jit(functools.partial(sampler._append_impl, window=sampler.shape.cache_len),
                 in_shardings=(sampler.param_shardings, sampler.state_shardings, sampler._rows2(c), sampler._row),
                 out_shardings=sampler.state_shardings, donate_argnums=(1,))
    tokens = jax.ShapeDtypeStruct((b, c), jnp.int32, sharding=sampler._rows2(c))
    n_valid = jax.ShapeDtypeStruct((b,), jnp.int32, sharding=sampler._row)
    return fn, (tokens, n_valid), f"{b}x{c} into {b}x{sampler.shape.cache_len}"


def _decode(cfg: Config, sampler: Sampler):
    steps, row = sampler._rows2(sampler.shape.decode_steps), sampler._row
    fn = jax.jit(functools.partial(sampler._decode_impl, window=sampler.shape.cache_len),
                 in_shardings=(sampler.param_shardings, sampler.state_shardings, sampler.sharder.replicated()),
                 out_shardings=(sampler.state_shardings, DecodeResult(steps, steps, row, row, steps, row)),
                 donate_argnums=(1,))
    key = jax.eval_shape(lambda: jax.random.key(0))
    key = jax.ShapeDtypeStruct(key.shape, key.dtype, sharding=sampler.sharder.replicated())
    return fn, (key,), f"{sampler.shape.batch}x{sampler.shape.decode_steps} steps, cache {sampler.shape.cache_len}"
