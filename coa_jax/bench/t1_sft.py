"""T1: one SFT step (forward, backward, AdamW) on packed sequences, ours vs transformers + torch.

Both sides get the same model shape (random weights), the same packed batch (segments of random
lengths, a padded tail, loss on every real token but each segment's first), AdamW with weight
decay 0.01 and global-norm clipping at 1.0, in float32 (or --dtype). The peer is a `transformers`
causal LM (packed rows via position ids, which `transformers` turns into a block-diagonal causal
mask) stepped by torch.optim.AdamW, eager, and under `torch.compile` when --torch-compile.

MFU counts 6 N FLOPs per token (N: parameters used in a matmul, the output head included) plus
attention: 3 x 4 L H D per visible key, summed over the batch's real queries (causal within
segments), against the measured matmul ceiling of the compute dtype.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from coa_jax.bench import harness
from coa_jax.bench.shapes import attention_flops, matmul_params, model_shape

QUICK = {"world": (8, 512)}
FULL = {"world": (8, 512), "smollm2-135m": (1, 512)}


@dataclasses.dataclass(frozen=True)
class Batch:
    """A packed batch (numpy): tokens, positions (restarting per segment), segment ids, loss mask."""

    tokens: np.ndarray
    positions: np.ndarray
    segments: np.ndarray
    mask: np.ndarray

    @property
    def visible_keys(self) -> float:
        """Keys seen by all real queries together (causal within each segment)."""
        real = self.segments > 0
        return float(((self.positions + 1) * real).sum())


def packed_batch(rows: int, length: int, vocab: int, seed: int = 0) -> Batch:
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, vocab, (rows, length)).astype(np.int32)
    positions = np.zeros((rows, length), np.int32)
    segments = np.zeros((rows, length), np.int32)
    for r in range(rows):
        end = length - int(rng.integers(0, length // 8 + 1))  # padded tail
        start, seg = 0, 1
        while start < end:
            n = min(int(rng.integers(length // 16, length // 2 + 1)), end - start)
            positions[r, start:start + n] = np.arange(n)
            segments[r, start:start + n] = seg
            start, seg = start + n, seg + 1
        positions[r, end:] = np.arange(length - end)  # padding: its own segment for the peer
    mask = (segments > 0) & (positions > 0)
    return Batch(tokens, positions, segments, mask)


def step_flops(cfg, batch: Batch) -> float:
    tokens = float((batch.segments > 0).sum())
    return 6.0 * matmul_params(cfg) * tokens + 3.0 * attention_flops(cfg, 1.0) * batch.visible_keys


def ours(cfg, batch: Batch, micro_batches: int = 1):
    """(step(i) -> Sample, compile seconds, compile counter): our jitted train step on one device."""
    import jax

    from coa_jax.config.schema import MeshConfig
    from coa_jax.models.params import init_params, param_shardings
    from coa_jax.sharding.mesh import make_mesh
    from coa_jax.sharding.rules import TRAINING_RULES, Sharder
    from coa_jax.train.logprobs import token_logprobs
    from coa_jax.train.losses import masked_nll
    from coa_jax.train.optimizer import OptimConfig, make_optimizer
    from coa_jax.train.step import init_train_state, make_train_step

    sharder = Sharder(make_mesh(MeshConfig(data=1), jax.devices()[:1]), TRAINING_RULES)
    params = init_params(cfg, sharder, jax.random.key(0))
    optimizer = make_optimizer(OptimConfig(lr=1e-4, decay="constant", weight_decay=0.01, grad_clip=1.0), 10**6)
    state = init_train_state(params, optimizer, param_shardings(cfg, sharder))
    state_sh = jax.tree.map(lambda x: x.sharding, state)
    arrays = {"tokens": batch.tokens, "positions": batch.positions, "segments": batch.segments,
              "mask": batch.mask.astype(np.float32)}
    arrays = {k: v.reshape((micro_batches, -1) + v.shape[1:]) for k, v in arrays.items()}
    names = (None, "batch", "length")
    batch_sh = {k: sharder.sharding(names, v.shape) for k, v in arrays.items()}

    def loss_fn(p, mb):
        logp, _ = token_logprobs(cfg, p, mb["tokens"], mb["positions"], mb["segments"], sharder)
        return masked_nll(logp, mb["mask"])

    step = make_train_step(loss_fn, optimizer, state_sh, batch_sh)
    arrays = jax.device_put(arrays, batch_sh)
    counter = harness.CompileCounter()
    box = [state]
    with counter:
        t0 = time.perf_counter()
        box[0], metrics = step(box[0], arrays)
        jax.block_until_ready(metrics)
        compile_s = time.perf_counter() - t0

    def run(i: int) -> harness.Sample:
        def once():
            box[0], m = step(box[0], arrays)
            jax.block_until_ready(m)

        return harness.timed(once)

    return run, compile_s, counter


class TorchSFT:
    """The peer, built in the child process from a spec: transformers model + torch AdamW."""

    def __init__(self, spec: dict):
        import torch
        import transformers

        hf = spec["hf_config"]
        config = transformers.AutoConfig.for_model(**{k: v for k, v in hf.items() if k != "architectures"})
        config._attn_implementation = "sdpa"
        torch.manual_seed(0)
        dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[spec["dtype"]]
        device = spec.get("device", "cpu")
        self.model = transformers.AutoModelForCausalLM.from_config(config).to(device=device, dtype=dtype).train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-4, weight_decay=0.01)
        b = spec["batch"]
        self.tokens = torch.as_tensor(b["tokens"], dtype=torch.long, device=device)
        self.positions = torch.as_tensor(b["positions"], dtype=torch.long, device=device)
        labels = self.tokens.clone()
        # HF shifts labels inside the loss: label t is predicted at t-1; mask like ours
        labels[~torch.as_tensor(b["mask"], device=device)] = -100
        self.labels = labels
        forward = self.model
        self.info = {"torch": torch.__version__, "transformers": transformers.__version__, "compiled": False}
        if spec.get("compile"):
            forward = torch.compile(self.model)
            self.info["compiled"] = True
        self.forward = forward
        self.params = list(self.model.parameters())

    def step(self):
        import torch

        out = self.forward(input_ids=self.tokens, position_ids=self.positions, labels=self.labels)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return out.loss.detach()

    def __call__(self, i: int) -> harness.Sample:
        return harness.timed(lambda: self.step().item())


def torch_spec(cfg, batch: Batch, dtype: str, compile: bool) -> dict:
    """What the child needs to build the peer (plain data: it crosses a process boundary)."""
    from coa_jax.models.hf_config import model_config_to_hf

    return {"hf_config": model_config_to_hf(cfg, torch_dtype=dtype), "dtype": dtype, "compile": compile,
            "batch": dataclasses.asdict(batch), "device": torch_device()}


def torch_device() -> str:
    """The peer runs where ours runs: CUDA when JAX's default backend is a GPU."""
    import jax

    return "cuda" if jax.default_backend() == "gpu" else "cpu"


def torch_runner(spec: dict) -> TorchSFT:
    runner = TorchSFT(spec)
    t0 = time.perf_counter()
    runner.step()  # first step: builds optimizer state (and compiles under torch.compile)
    runner.info["first_step_s"] = time.perf_counter() - t0
    return runner


def run(opts, ceil) -> dict:
    """The T1 table: every model shape of the run, ours vs the peer(s), alternating."""
    import os

    from coa_jax.bench.peer import PeerError, PeerProcess

    shapes = {opts.model: (opts.batch, opts.seq)} if opts.model else (QUICK if opts.quick else FULL)
    repeats = opts.repeats or (3 if opts.quick else 5)
    threads = len(os.sched_getaffinity(0))
    rows, runs = [], {}
    for name, (b, t) in shapes.items():
        b, t = opts.batch or b, opts.seq or t
        cfg = model_shape(name, dtype=opts.dtype, remat=opts.remat, attention=opts.attention)
        batch = packed_batch(b, t, cfg.vocab_size)
        flops = step_flops(cfg, batch)
        tokens = int((batch.segments > 0).sum())
        print(f"T1 {name}: batch {b} x {t} ({tokens} real tokens), {opts.dtype}, "
              f"{flops / 1e9:.1f} GFLOP/step", flush=True)
        step, compile_s, counter = ours(cfg, batch)
        runners = {"coa_jax": step}
        peers = {} if opts.no_peer else {"torch-eager": False} | ({"torch-compile": True} if opts.torch_compile else {})
        procs = []
        for peer, compiled in peers.items():
            try:
                proc = PeerProcess("coa_jax.bench.t1_sft:torch_runner", torch_spec(cfg, batch, opts.dtype, compiled),
                                   threads)
            except PeerError as err:
                print(f"  {peer}: unavailable ({str(err).strip().splitlines()[-1]})")
                continue
            procs.append(proc)
            runners[peer] = proc
        samples = harness.alternate(runners, repeats, warmup=1, counter=counter)
        recompiles = counter.count
        for proc in procs:
            proc.close()
        ours_s = harness.Summary.of(samples["coa_jax"])
        peak = ceil.flops(opts.dtype)
        for setup, ss in samples.items():
            s = harness.Summary.of(ss)
            rows.append({"model": name, "setup": setup, "batch": f"{b}x{t}", "median_ms": s.median_s * 1e3,
                         "iqr_ms": s.iqr_s * 1e3, "cpu_ms": s.cpu_median_s * 1e3,
                         "tokens_per_s": tokens / s.median_s, "mfu_measured": flops / s.median_s / peak,
                         "mfu_nominal": (flops / s.median_s / ceil.nominal[opts.dtype]
                                         if opts.dtype in ceil.nominal else None),
                         "peer_over_ours": s.median_s / ours_s.median_s,
                         "compile_s": compile_s if setup == "coa_jax" else None,
                         "recompiles": recompiles if setup == "coa_jax" else None})
        runs[name] = {k: [dataclasses.asdict(x) for x in v] for k, v in samples.items()}
    print(harness.format_table(rows, [
        ("model", "model", ""), ("setup", "setup", ""), ("batch", "batch", ""), ("median_ms", "median ms", ".1f"),
        ("iqr_ms", "IQR ms", ".1f"), ("cpu_ms", "cpu ms", ".0f"), ("tokens_per_s", "tok/s", ".0f"),
        ("mfu_measured", "MFU (measured peak)", ".1%"), ("peer_over_ours", "peer/ours", ".2f"),
        ("compile_s", "compile s", ".1f"), ("recompiles", "recompiles", "")]))
    return {"rows": rows, "runs": runs}
