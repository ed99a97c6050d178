"""Invariants every trajectory must satisfy; `check_trajectory` lists the ones a trajectory breaks.

Used by the tests on every rollout they make, and available to training code as a cheap guard
(`assert not check_trajectory(...)`).
"""

from __future__ import annotations


import numpy as np

from coa_jax.data.provenance import Provenance
from coa_jax.env.registry import ToolRegistry
from coa_jax.env.tags import THINK_CLOSE
from coa_jax.rollout.config import RolloutConfig
from coa_jax.rollout.stops import TextCodec
from coa_jax.rollout.trajectory import FINISH_REASONS, FORCE_REASONS, Trajectory

P = Provenance


def _runs(labels: np.ndarray, label: Provenance) -> list[tuple[int, int]]:
    """Maximal [start, end) runs of `label`."""
    hit = np.concatenate([[False], labels == int(label), [False]])
    edges = np.flatnonzero(hit[1:] != hit[:-1])
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def check_trajectory(traj: Trajectory, codec: TextCodec, cfg: RolloutConfig, *, env: str,
                     registry: ToolRegistry | None = None) -> list[str]:
    """Violated invariants of `traj` (empty when it is well formed).

    Args:
      traj: the trajectory.
      codec: the tokenizer it was generated with.
      cfg: the budgets it was generated under.
      env: "real", "simulated" or "none".
      registry: the tool library (needed unless env is "none").

    Returns:
      One message per broken invariant.
    """
    bad = []
    ids, labels, lps, p = traj.token_ids, traj.labels, traj.logprobs, traj.prompt_len
    if not len(ids) == len(labels) == len(lps):
        return [f"lengths differ: ids {len(ids)}, labels {len(labels)}, logprobs {len(lps)}"]
    if np.any(labels[:p] != int(P.PROMPT)) or np.any(np.isin(labels[p:], [int(P.PROMPT), int(P.PAD)])):
        bad.append("PROMPT labels must cover exactly the prompt, with no PAD inside")
    if len(ids) - p > cfg.max_response_tokens:
        bad.append(f"response has {len(ids) - p} tokens > max_response_tokens {cfg.max_response_tokens}")
    sampled = traj.sampled_mask
    if not np.all(np.isfinite(lps[sampled])) or np.any(lps[sampled] > 1e-6):  # rounding of a sharded softmax
        bad.append(f"sampled tokens need finite log-probs <= 0, got max {lps[sampled].max()}")
    if np.any(lps[~sampled] != 0):
        bad.append("log-probs must be 0 on tokens that were not sampled")
    if traj.finish not in FINISH_REASONS or traj.forced not in FORCE_REASONS:
        bad.append(f"unknown finish/forced: {traj.finish!r} / {traj.forced!r}")
    eos_at = [i for i in range(p, len(ids)) if int(ids[i]) in traj.eos_ids and labels[i] != int(P.OBSERVATION)]
    if traj.finish == "answered" and eos_at != [len(ids) - 1]:
        bad.append(f"an answered trajectory ends with its only eos; eos at {eos_at}")
    forced_runs = _runs(labels, P.FORCED)
    if (len(forced_runs) == 1) != bool(traj.forced) or len(forced_runs) > 1:
        bad.append(f"forced={traj.forced!r} but {len(forced_runs)} FORCED spans")
    answer_at = np.flatnonzero(labels == int(P.ANSWER))
    think_close = registry.think_close if registry is not None else THINK_CLOSE
    if len(answer_at) and think_close not in codec.decode(ids[p:answer_at[0]].tolist()):
        bad.append("ANSWER tokens before the end of thinking")
    if env != "none" and registry is not None:
        bad += _check_observations(traj, codec, cfg, env, registry, forced_runs)
    elif np.any(labels == int(P.OBSERVATION)):
        bad.append("observations appended without tools")
    return bad


def _check_observations(traj: Trajectory, codec: TextCodec, cfg: RolloutConfig, env: str, registry: ToolRegistry,
                        forced_runs: list[tuple[int, int]]) -> list[str]:
    bad = []
    ids, labels, p = traj.token_ids, traj.labels, traj.prompt_len
    limit_texts = {registry.limit_result(name).text.strip() for name in registry.names}
    real, limits = 0, 0
    for start, end in _runs(labels, P.OBSERVATION):
        if forced_runs and start >= forced_runs[0][1]:
            bad.append(f"observation at {start} after the forced answer")
        before = codec.decode(ids[p:start].tolist())
        action = registry.parse_action(before)
        if action is None:
            bad.append(f"observation at {start} does not follow a closed action")
            continue
        text = codec.decode(ids[start:end].tolist()).strip()
        spec = registry[action.tool].spec
        if not (text.startswith(spec.result_open) and text.endswith(spec.result_close)):
            bad.append(f"observation at {start} is not wrapped in {spec.result_open} ... {spec.result_close}")
        if text in limit_texts:
            limits += 1
            if limits > 1 or traj.num_actions < cfg.max_actions:
                bad.append(f"limit observation at {start} before the budget of {cfg.max_actions} actions was spent")
        else:
            real += 1
            if limits or real > cfg.max_actions or env != "real":
                bad.append(f"tool observation at {start} beyond the action budget or outside the real env")
    # a simulated tool in the real env answers with no text: its call counts without an observation
    silent = sum(registry[c.tool].simulated for c in traj.tool_calls if not c.limited and not c.simulated)
    if env == "real" and real != traj.num_actions - silent:
        bad.append(f"num_actions {traj.num_actions} but {real} tool observations")
    if traj.num_actions > cfg.max_actions:
        bad.append(f"num_actions {traj.num_actions} > max_actions {cfg.max_actions}")
    for start, end in _runs(labels, P.SIM_OBSERVATION):
        text = codec.decode(ids[start:end].tolist())
        opens = [t.spec.result_open for t in registry.tools]
        if not any(o in text for o in opens):
            bad.append(f"simulated observation at {start} does not contain an opening tag")
    return bad
