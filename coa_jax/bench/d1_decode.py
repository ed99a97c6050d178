"""D1: decode throughput, batch x context, ours (rollout.sampler) vs `transformers` generate.

Each setup fills a batch of B rows with C prompt tokens, then generates N tokens per row
(greedy, no stop sequence, so every row makes all N). Two timings per side, alternated:
`prefill` (the prompt plus the first token) and `generate` (the prompt plus N tokens); the
decode time per step is their difference over N - 1. The peer is `generate` with a static KV
cache (`cache_implementation="static"`), falling back to the default cache where that fails.

Memory-bandwidth utilisation of a decode step counts the bytes it must read: every weight used
in a matmul once (the output head included) plus the K and V of the context so far, over the
copy bandwidth measured at the start of the run.
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from coa_jax.bench import harness
from coa_jax.bench.shapes import matmul_params, model_shape

QUICK = {"model": "world", "batches": (1, 8, 32), "contexts": (512,), "new_tokens": 32}
FULL = {"model": "world", "batches": (1, 8, 32, 128), "contexts": (512, 2048), "new_tokens": 64}


def step_bytes(cfg, batch: int, context: float, dtype_bytes: int) -> float:
    """Bytes one decode step reads: weights once, each row's K and V of its context."""
    kv = 2 * cfg.num_layers * cfg.num_kv_heads * cfg.resolved_head_dim * dtype_bytes
    return matmul_params(cfg) * dtype_bytes + batch * context * kv


class Ours:
    """Sampler-based prefill + decode of one (batch, context) setup."""

    def __init__(self, cfg, params, sharder, batch: int, context: int, new_tokens: int):
        import jax

        from coa_jax.rollout.sampler import Sampler, SamplerShape
        from coa_jax.rollout.sampling import SamplingParams

        self.jax, self.params, self.n = jax, params, new_tokens
        self.sampler = Sampler(cfg, sharder, SamplerShape(batch, context + new_tokens, new_tokens),
                               SamplingParams(temperature=0.0))
        self.params = self.sampler.prepare(params)  # compute-dtype weights, as the rollout engine holds them
        self.tokens = np.random.default_rng(1).integers(0, cfg.vocab_size, (batch, context)).astype(np.int32)
        self.window = self.sampler.window(context + new_tokens)
        self.live = np.ones((batch,), bool)

    def _run(self, steps: int) -> float:
        s = self.sampler
        state = s.append(self.params, s.init_state(), self.tokens, np.full(self.live.shape, self.tokens.shape[1]),
                         window=self.window)
        state, out = s.decode(self.params, state, self.live, np.full(self.live.shape, steps), window=self.window)
        return float(np.asarray(out.num_B).sum())

    def prefill(self, i: int) -> harness.Sample:
        return harness.timed(lambda: self._run(1))

    def generate(self, i: int) -> harness.Sample:
        return harness.timed(lambda: self._run(self.n))


class TorchGenerate:
    """The peer in the child process: transformers generate at fixed length (greedy, no eos)."""

    def __init__(self, spec: dict):
        import torch
        import transformers

        hf = spec["hf_config"]
        config = transformers.AutoConfig.for_model(**{k: v for k, v in hf.items() if k != "architectures"})
        torch.manual_seed(0)
        dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[spec["dtype"]]
        self.device = spec.get("device", "cpu")
        self.model = transformers.AutoModelForCausalLM.from_config(config).to(device=self.device, dtype=dtype).eval()
        self.ids = torch.as_tensor(spec["tokens"], dtype=torch.long, device=self.device)
        self.n = spec["new_tokens"]
        self.cache = "static"
        self.info = {"cache": "static"}
        try:
            self._generate(2)
        except Exception as err:  # noqa: BLE001 - a model without static cache support uses the default
            self.cache = None
            self.info = {"cache": f"dynamic (static failed: {type(err).__name__})"}

    def _generate(self, n: int) -> float:
        import torch

        kw = {"cache_implementation": self.cache} if self.cache else {}
        with torch.no_grad():
            out = self.model.generate(input_ids=self.ids, attention_mask=torch.ones_like(self.ids), do_sample=False,
                                      max_new_tokens=n, min_new_tokens=n, pad_token_id=0, eos_token_id=None, **kw)
        if self.device == "cuda":
            torch.cuda.synchronize()
        return float((out.shape[1] - self.ids.shape[1]) * out.shape[0])

    def __call__(self, i: int) -> harness.Sample:
        # even requests: prefill + first token; odd: the full generation
        return harness.timed(lambda: self._generate(1 if i % 2 == 0 else self.n))


def torch_runner(spec: dict) -> TorchGenerate:
    return TorchGenerate(spec)


def run(opts, ceil) -> dict:
    import jax

    from coa_jax.bench.peer import PeerError, PeerProcess
    from coa_jax.bench.t1_sft import torch_device
    from coa_jax.config.schema import MeshConfig
    from coa_jax.models.hf_config import model_config_to_hf
    from coa_jax.models.params import init_params
    from coa_jax.sharding.mesh import make_mesh
    from coa_jax.sharding.rules import SAMPLING_RULES, Sharder

    grid = dict(QUICK if opts.quick else FULL)
    if opts.model:
        grid["model"] = opts.model
    if opts.batch:
        grid["batches"] = (opts.batch,)
    if opts.seq:
        grid["contexts"] = (opts.seq,)
    repeats = opts.repeats or (3 if opts.quick else 5)
    cfg = model_shape(grid["model"], dtype=opts.dtype, attention=opts.attention)
    sharder = Sharder(make_mesh(MeshConfig(data=1), jax.devices()[:1]), SAMPLING_RULES)
    params = init_params(cfg, sharder, jax.random.key(0))
    dtype_bytes = np.dtype(jax.numpy.dtype(opts.dtype)).itemsize
    n = grid["new_tokens"]
    rows, runs = [], {}
    for context in grid["contexts"]:
        for batch in grid["batches"]:
            print(f"D1 {grid['model']}: batch {batch}, context {context}, {n} new tokens", flush=True)
            ours = Ours(cfg, params, sharder, batch, context, n)
            counter = harness.CompileCounter()
            t0 = time.perf_counter()
            with counter:
                ours.prefill(-1), ours.generate(-1)
            compile_s = time.perf_counter() - t0
            runners = {"coa_jax/prefill": ours.prefill, "coa_jax/generate": ours.generate}
            peer = None
            if not opts.no_peer:
                spec = {"hf_config": model_config_to_hf(cfg, torch_dtype=opts.dtype), "dtype": opts.dtype,
                        "tokens": ours.tokens, "new_tokens": n, "device": torch_device()}
                try:
                    peer = PeerProcess("coa_jax.bench.d1_decode:torch_runner", spec, len(os.sched_getaffinity(0)))
                    runners["transformers/prefill"] = lambda i: peer(2 * max(i, 0))
                    runners["transformers/generate"] = lambda i: peer(2 * max(i, 0) + 1)
                except PeerError as err:
                    print(f"  transformers: unavailable ({str(err).strip().splitlines()[-1]})")
            counter = harness.CompileCounter()
            samples = harness.alternate(runners, repeats, warmup=1, counter=counter, log=None)
            if peer is not None:
                peer.close()
            med = {k: harness.Summary.of(v) for k, v in samples.items()}
            ctx_mean = context + n / 2
            for side in ("coa_jax", "transformers"):
                if f"{side}/generate" not in med:
                    continue
                full, pre = med[f"{side}/generate"], med[f"{side}/prefill"]
                step_s = max(full.median_s - pre.median_s, 1e-9) / (n - 1)
                ours_step = max(med["coa_jax/generate"].median_s - med["coa_jax/prefill"].median_s, 1e-9) / (n - 1)
                rows.append({"model": grid["model"], "setup": side, "batch": batch, "context": context,
                             "generate_ms": full.median_s * 1e3, "iqr_ms": full.iqr_s * 1e3,
                             "prefill_ms": pre.median_s * 1e3, "decode_step_ms": step_s * 1e3,
                             "decode_tok_s": batch / step_s,
                             "bw_util": step_bytes(cfg, batch, ctx_mean, dtype_bytes) / step_s / ceil.copy_bytes_per_s,
                             "peer_over_ours": (full.median_s / med["coa_jax/generate"].median_s),
                             "decode_peer_over_ours": step_s / ours_step,
                             "compile_s": compile_s if side == "coa_jax" else None,
                             "recompiles": counter.count if side == "coa_jax" else None})
            runs[f"b{batch}_c{context}"] = {k: [dataclasses.asdict(x) for x in v] for k, v in samples.items()}
            print(f"  ours {med['coa_jax/generate'].median_s * 1e3:.0f} ms"
                  + (f", transformers {med['transformers/generate'].median_s * 1e3:.0f} ms"
                     if "transformers/generate" in med else ""), flush=True)
    print(harness.format_table(rows, [
        ("setup", "setup", ""), ("batch", "batch", ""), ("context", "context", ""),
        ("generate_ms", "prefill+N ms", ".0f"), ("iqr_ms", "IQR ms", ".0f"), ("prefill_ms", "prefill ms", ".0f"),
        ("decode_step_ms", "step ms", ".2f"), ("decode_tok_s", "decode tok/s", ".0f"),
        ("bw_util", "BW util", ".1%"), ("peer_over_ours", "peer/ours", ".2f"),
        ("decode_peer_over_ours", "step peer/ours", ".2f"), ("recompiles", "recompiles", "")]))
    return {"rows": rows, "runs": runs, "grid": {k: list(v) if isinstance(v, tuple) else v for k, v in grid.items()}}
