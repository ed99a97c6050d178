"""One agent trajectory for people to watch (`generate --tools`), printed by provenance."""

from __future__ import annotations

import argparse
import json
import sys

from coa_jax.data.provenance import Provenance

# ANSI styles per label when printing to a terminal; brackets otherwise
_STYLE = {Provenance.OBSERVATION: ("\033[36m", "\033[0m"), Provenance.SIM_OBSERVATION: ("\033[35m", "\033[0m"),
          Provenance.FORCED: ("\033[33m", "\033[0m")}
_PLAIN = {Provenance.OBSERVATION: ("[obs|", "|obs]"), Provenance.SIM_OBSERVATION: ("[sim|", "|sim]"),
          Provenance.FORCED: ("[forced|", "|forced]")}


def render(traj, tokenizer, color: bool) -> str:
    """The response with observations and forced text marked (colours on a terminal)."""
    styles = _STYLE if color else _PLAIN
    ids, labels = traj.response_ids.tolist(), traj.response_labels.tolist()
    out, start = [], 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or labels[i] != labels[start]:
            text = tokenizer.decode(ids[start:i], skip_special_tokens=False)
            open_, close = styles.get(Provenance(labels[start]), ("", ""))
            out.append(f"{open_}{text}{close}")
            start = i
    return "".join(out)


def run_agent(args: argparse.Namespace, cfg, params, sharder, tokenizer, prompt_ids, sampling, *,
              max_new_tokens: int, seed: int) -> int:
    """Rolls out one trajectory with `args.tools` (N = `max_new_tokens`) and prints it (or its JSON
    with --json)."""
    from coa_jax.commands.eval import build_registry
    from coa_jax.env.registry import ToolRegistry
    from coa_jax.models.tokenizer import eos_ids
    from coa_jax.rollout.config import RolloutConfig
    from coa_jax.rollout.engine import RolloutEngine
    from coa_jax.rollout.host_io import bucket

    if args.tools == "world_model":
        registry, env = ToolRegistry.from_config({"search": "world_model"}), "simulated"
    else:
        registry, env = build_registry(args.tools, tokenizer, args.topk), "real"
    reserve = max(16, min(64, max_new_tokens // 4))
    rollout = RolloutConfig(batch_slots=1, max_prompt_tokens=bucket(len(prompt_ids)),
                            max_response_tokens=max(max_new_tokens, reserve + 1), max_actions=args.max_actions,
                            answer_reserve=reserve, temperature=sampling.temperature, top_p=sampling.top_p,
                            top_k=sampling.top_k, seed=seed, env=env)
    try:
        engine = RolloutEngine(cfg, sharder, rollout, tokenizer, eos_ids=eos_ids(tokenizer), registry=registry)
        result = engine.rollout(engine.prepare_params(params), [prompt_ids])
    finally:
        registry.close()
    traj = result.trajectories[0]
    if args.json:
        print(json.dumps(traj.to_json()))
        return 0
    print(render(traj, tokenizer, color=sys.stdout.isatty()))
    calls = ", ".join(f"{c.query!r}{' (limit)' if c.limited else ''}" for c in traj.tool_calls)
    print(f"\n-- {traj.num_actions} actions [{calls}], finish={traj.finish}"
          f"{', forced by ' + traj.forced if traj.forced else ''}, {len(traj.response_ids)} tokens, "
          f"{result.stats.wall_s:.1f} s", file=sys.stderr)
    return 0
