"""R1: one full GRPO step (rollout, old/ref log-probs, update), phase by phase, vs transformers + torch.

Ours is `train.grpo.GRPOBody` (the RL stage's step) on the A1 workload: P prompts x G = 5
samples of the scripted agent with BM25 search behind the loopback server (0 ms latency), reward
"autocoa", KL to a frozen reference, one AdamW update. Its phases come from the step's own
timers (rollout; scoring = rewards + old and reference log-probs; update).

The peer composes the same step from `transformers` + torch in a child process: the reference
rollout loop (generate, cut at the action, search, re-encode, generate again), then old and
reference log-probs as two no-grad forwards over the packed trajectories our step trained on
(same shapes), then a forward/backward of the same clipped-ratio + low-variance-KL loss and
torch AdamW.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time

import numpy as np

from coa_jax.bench import harness
from coa_jax.bench.a1_rollout import MODEL, build_workload, registry_for

PHASES = ("rollout", "scoring", "update")


def grpo_body(wl, reg, prompts_per_step: int, group_size: int, total_steps: int):
    """(body, state) for GRPO on the workload's scripted policy."""
    import jax
    import jax.numpy as jnp

    from coa_jax.env.rewards import get_reward
    from coa_jax.models.params import param_shardings
    from coa_jax.rollout.engine import RolloutEngine
    from coa_jax.sharding.rules import TRAINING_RULES, Sharder
    from coa_jax.train.grpo import GRPOBody, PromptSet
    from coa_jax.train.grpo_loss import GRPOParams
    from coa_jax.train.optimizer import OptimConfig, make_optimizer
    from coa_jax.train.reference import ReferenceModel
    from coa_jax.train.step import init_train_state

    train = Sharder(wl.sharder.mesh, TRAINING_RULES)
    # a copy: the train step donates its state, and the workload's params are used again (export)
    params = jax.tree.map(jnp.copy, jax.device_put(wl.params, param_shardings(MODEL, train)))
    cfg = dataclasses.replace(wl.cfg, batch_slots=prompts_per_step * group_size)
    engine = RolloutEngine(MODEL, wl.sharder, cfg, wl.tok, eos_ids=[wl.tok.eos_token_id], registry=reg)
    optimizer = make_optimizer(OptimConfig(lr=1e-6, decay="constant"), total_steps)
    state = init_train_state(params, optimizer, param_shardings(MODEL, train))
    golds = [("paris",)] * len(wl.prompts)
    body = GRPOBody(MODEL, train, engine, ReferenceModel(params), PromptSet(wl.prompts, golds), get_reward("autocoa"),
                    grpo=GRPOParams(kl_coef=0.001), optimizer=optimizer,
                    state_shardings=jax.tree.map(lambda x: x.sharding, state), group_size=group_size,
                    prompts_per_step=prompts_per_step, total_steps=total_steps, env="real", sim_fraction=0.0,
                    updates_per_batch=1, micro_batches=1, normalize_std=True, filter_degenerate=False,
                    recompute_old_logprobs=True, temperature=cfg.temperature, seed=0,
                    pad_id=wl.tok.pad_token_id or 0)
    return body, state


class TorchGRPO:
    """The peer in the child: reference rollout loop + HF forwards + torch AdamW on a GRPO loss."""

    def __init__(self, spec: dict):
        import torch
        import transformers

        from coa_jax.env.observation import TokenCounter
        from coa_jax.env.registry import ToolRegistry
        from coa_jax.rollout.reference_loop import ReferenceLoop

        self.torch = torch
        tok = transformers.AutoTokenizer.from_pretrained(spec["hf_dir"])
        reg = ToolRegistry.from_config({"search": "http"}, {"search": {"url": spec["url"], "topk": 3,
                                                                       "max_tokens": 48, "cache_size": 0}},
                                       tokens=TokenCounter.from_tokenizer(tok))
        self.model = transformers.AutoModelForCausalLM.from_pretrained(spec["hf_dir"], dtype=torch.float32)
        self.ref = transformers.AutoModelForCausalLM.from_pretrained(spec["hf_dir"], dtype=torch.float32).eval()
        self.loop = ReferenceLoop(self.model.eval(), tok, reg, spec["rollout_cfg"])
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-6)
        self.spec = spec
        self.info = {}

    def _logp(self, model, b):
        torch = self.torch
        logits = model(input_ids=b["tokens"], position_ids=b["positions"]).logits.float()
        logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, b["tokens"][:, 1:, None])[..., 0]
        return torch.nn.functional.pad(logp, (1, 0))

    def __call__(self, i: int) -> dict:
        torch = self.torch
        t0 = time.perf_counter()
        self.model.eval()
        self.loop.run(self.spec["prompts"], group_size=self.spec["group_size"], seed=100 + i)
        t1 = time.perf_counter()
        b = {k: torch.as_tensor(v) for k, v in self.spec["batch"].items()}
        b["tokens"], b["positions"] = b["tokens"].long(), b["positions"].long()
        with torch.no_grad():
            old, ref = self._logp(self.model, b), self._logp(self.ref, b)
        t2 = time.perf_counter()
        self.model.train()
        logp = self._logp(self.model, b)
        ratio = torch.exp(logp - old)
        adv = b["adv"][:, None]
        pg = -torch.minimum(ratio * adv, torch.clamp(ratio, 0.8, 1.2) * adv)
        kl = torch.clamp(torch.exp(ref - logp) - (ref - logp) - 1, -10, 10)
        mask = b["policy_mask"]
        loss = ((pg + 0.001 * kl) * mask).sum() / mask.sum().clamp(min=1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        return {"rollout": t1 - t0, "scoring": t2 - t1, "update": t3 - t2, "total": t3 - t0}


def torch_runner(spec: dict) -> TorchGRPO:
    return TorchGRPO(spec)


def _packed_batch(body, state, wl, group_size: int) -> dict:
    """The packed trajectories of one of our steps (what the peer's scoring and update see)."""
    from coa_jax.rollout.generate import bucket
    from coa_jax.rollout.trajectory import pack_trajectories
    from coa_jax.train.grpo import POLICY_LABELS

    res = body.engine.rollout(body.engine.prepare_params(state.params), wl.prompts, group_size=group_size, seed=7)
    trajs = res.trajectories
    batch = pack_trajectories(trajs, bucket(max(len(t.token_ids) for t in trajs)), wl.tok.pad_token_id or 0)
    adv = np.random.default_rng(0).standard_normal(len(trajs)).astype(np.float32)
    return {"tokens": batch.tokens_BxL, "positions": batch.positions_BxL,
            "policy_mask": np.isin(batch.labels_BxL, POLICY_LABELS).astype(np.float32), "adv": adv}


def run(opts, ceil) -> dict:
    from coa_jax.bench.peer import PeerError, PeerProcess
    from coa_jax.env.bm25 import BM25Retriever
    from coa_jax.env.server import serve_in_thread
    from coa_jax.models.hf_export import export_hf

    g = 5
    prompts_n = opts.batch or (2 if opts.quick else 4)
    repeats = opts.repeats or (2 if opts.quick else 4)
    wl = build_workload(prompts_n, g, opts.seq or (256 if opts.quick else 512), 5, 0.1, 0.03)
    retriever = BM25Retriever(os.path.join(wl.work, "corpus.jsonl"))
    with serve_in_thread(retriever) as url:
        reg = registry_for(url, wl.tok)
        body, state = grpo_body(wl, reg, prompts_n, g, repeats + 2)
        counter = harness.CompileCounter()
        box = [state, 0]
        t0 = time.perf_counter()
        with counter:
            box[0], _ = body(box[0], 0)
        first_s = time.perf_counter() - t0
        compile_first = counter.seconds
        raw = {"coa_jax": [], "transformers+torch": []}

        def ours(i):
            box[1] += 1
            c0, t = harness.process_cpu_s(), time.perf_counter()
            box[0], m = body(box[0], box[1])
            wall = time.perf_counter() - t
            if i >= 0:
                raw["coa_jax"].append({"rollout": m["time_rollout_s"], "scoring": m["time_scoring_s"],
                                       "update": m["time_update_s"], "total": wall})
            return harness.Sample(wall, harness.process_cpu_s() - c0)

        runners = {"coa_jax": ours}
        peer = None
        if not opts.no_peer:
            hf_dir = os.path.join(wl.work, "hf_r1")
            export_hf(wl.params, MODEL, hf_dir, tokenizer=wl.tok)
            spec = {"hf_dir": hf_dir, "url": url, "rollout_cfg": wl.cfg, "prompts": wl.prompts, "group_size": g,
                    "batch": _packed_batch(body, box[0], wl, g)}
            try:
                peer = PeerProcess("coa_jax.bench.r1_grpo:torch_runner", spec, len(os.sched_getaffinity(0)))

                def theirs(i):
                    phases = peer(i)
                    if i >= 0:
                        raw["transformers+torch"].append(phases)
                    return harness.Sample(phases["total"])

                runners["transformers+torch"] = theirs
            except PeerError as err:
                print(f"  transformers+torch: unavailable ({str(err).strip().splitlines()[-1]})")
        counter = harness.CompileCounter()
        harness.alternate(runners, repeats, warmup=1, counter=counter)
        if peer is not None:
            peer.close()
        reg.close()
    rows = []
    ours_total = statistics.median(r["total"] for r in raw["coa_jax"])
    for setup, phases in raw.items():
        if not phases:
            continue
        row = {"setup": setup}
        for ph in PHASES + ("total",):
            row[ph + "_s"] = statistics.median(p[ph] for p in phases)
        row["peer_over_ours"] = row["total_s"] / ours_total
        rows.append(row)
    if len(rows) == 2:
        rows.append({"setup": "ratio peer/ours", **{f"{ph}_s": rows[1][f"{ph}_s"] / rows[0][f"{ph}_s"]
                                                     for ph in PHASES + ("total",)}})
    print(harness.format_table(rows, [("setup", "setup", "")] + [(f"{ph}_s", ph + " s", ".2f")
                                                                 for ph in PHASES + ("total",)]))
    print(f"first step {first_s:.1f} s (compile {compile_first:.1f} s); compilations after warm-up: {counter.count}"
          + (f" ({', '.join(sorted(set(counter.names)))})" if counter.count else ""))
    return {"rows": rows, "first_step_s": first_s, "compile_first_s": compile_first,
            "recompiles_after_warmup": counter.count, "recompiled": counter.names, "raw": raw,
            "workload": {"prompts": prompts_n, "group_size": g, "max_response_tokens": wl.cfg.max_response_tokens}}
