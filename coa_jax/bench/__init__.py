"""Benchmarks against peers on the same machine: `python launch/bench.py {t1,d1,a1,r1,k1}`.

  t1  SFT step (forward, backward, AdamW) vs `transformers` + torch AdamW
  d1  decode throughput vs `transformers` generate
  a1  agent rollout vs the reference-style loop on `transformers`, and vs our synchronous mode
  r1  one GRPO step, phase by phase, vs the same step composed from `transformers` + torch
  k1  compile budget of a GRPO run with bucketed lengths

Every benchmark alternates ours and the peer (A B A B ...) after warm-up, reports medians and
spread, the ratio peer_time / our_time (> 1: we are faster), and the fraction of the machine's
measured ceilings (see `ceilings`).
"""
