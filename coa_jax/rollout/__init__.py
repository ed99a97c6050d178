"""Agent inference: jitted prefill/decode/append on device, the tool loop of Algorithm 1 on the host.

Modules, one concern each:

- `sampling`: greedy / temperature / top-k / top-p, per-row random streams.
- `sampler`: the device side (KV cache state with per-row control, `append`, `control`,
  `decode` with multi-token stop sequences matched in the loop).
- `stops`: tags as token-id stop sequences for any tokenizer.
- `config`: `RolloutConfig` (budgets T and N, batch shape, sampling, environment).
- `engine`: `RolloutEngine.rollout(params, prompts, group_size=G, env=...)` -> trajectories.
- `rows`, `host_io`: the host loop's per-row records, batched device writes and tool batches.
- `trajectory`: `Trajectory` (ids, provenance labels, log-probs, actions, stop reason, tool
  latencies) and `pack_trajectories` for the trainer; `checker`: their invariants.
- `generate`: plain batched generation (no tools).
- `scripted`: a decoder whose weights follow a designed token grammar (tests, benchmarks).
- `reference_loop`: the reference's re-encode-and-regenerate loop on transformers (benchmarks).
- `eval_data`, `eval_metrics`, `workflow`, `evaluation`: `python -m coa_jax eval`.
- `watch`: `python -m coa_jax generate --tools`.
"""
