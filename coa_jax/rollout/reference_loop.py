"""The reference's rollout loop on `transformers` (PyTorch CPU), as a baseline for benchmarks.

AutoCoA's `vllm_rollout_coa.py` generates every row to the end (eos or the token limit), finds
the first `<begin_search> q </end_search>` before `</think>` in the decoded text, cuts there, runs
the searches as one batch, appends the observation *text*, re-encodes the whole prefix and
generates again from scratch, at most T times (the last time with the limit observation). The KV
cache is never kept across a tool call and every round re-prefills the full prefix. This module
reproduces that loop (same tool registry, same budgets) for throughput comparisons; it is not
used for training (it re-encodes generated text).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from coa_jax.env.registry import ToolRegistry
from coa_jax.env.tags import SEARCH_SPEC, Action
from coa_jax.rollout.config import RolloutConfig

_CALL = re.compile(re.escape(SEARCH_SPEC.open_tag) + r"(.*?)" + re.escape(SEARCH_SPEC.close_tag), re.DOTALL)


@dataclasses.dataclass(frozen=True)
class ReferenceRow:
    """One finished row: its response text, policy tokens kept, searches made, limit reached."""

    response_text: str
    policy_tokens: int
    actions: int
    limited: bool


class ReferenceLoop:
    """The reference loop around a `transformers` causal LM.

    Args:
      model: a `transformers` causal LM (eval mode).
      tokenizer: its tokenizer.
      registry: provides the "search" tool.
      cfg: T (max_actions), N (max_response_tokens) and the sampling temperature.
    """

    def __init__(self, model, tokenizer, registry: ToolRegistry, cfg: RolloutConfig):
        self.model, self.tok, self.registry, self.cfg = model, tokenizer, registry, cfg
        self.eos = tokenizer.eos_token_id

    def _generate(self, rows: list[list[int]], budgets: list[int]) -> list[list[int]]:
        import torch

        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.eos, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):  # left padding, as batched generation needs
            ids[i, width - len(r):] = torch.tensor(r)
            mask[i, width - len(r):] = 1
        sampling = ({"do_sample": False} if self.cfg.sampling.greedy else
                    {"do_sample": True, "temperature": self.cfg.temperature, "top_k": 0, "top_p": 1.0})
        with torch.no_grad():
            out = self.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max(budgets),
                                      eos_token_id=self.eos, pad_token_id=self.eos, **sampling)
        new = []
        for i, budget in enumerate(budgets):
            row = out[i, width:].tolist()[:budget]
            if self.eos in row:
                row = row[:row.index(self.eos) + 1]
            new.append(row)
        return new

    def run(self, prompts: Sequence[Sequence[int]], *, group_size: int = 1, seed: int = 0) -> list[ReferenceRow]:
        """Rolls out every prompt `group_size` times."""
        import torch

        torch.manual_seed(seed)
        n, t_max = self.cfg.max_response_tokens, self.cfg.max_actions
        rows = [list(p) for p in prompts for _ in range(group_size)]
        heads = [self.tok.decode(r) for r in rows]
        prefix = list(heads)
        used = [0] * len(rows)  # response tokens of the prefix, by re-encoding (as the reference does)
        obs_tokens, actions, limited = [0] * len(rows), [0] * len(rows), [False] * len(rows)
        responses = [self.tok.decode(r) for r in self._generate(rows, [n] * len(rows))]
        for it in range(t_max + 1):
            calls = {}
            for i, text in enumerate(responses):
                m = _CALL.search(text.split("</think>")[0])
                if m and m.group(1).strip() and used[i] < n:
                    calls[i] = (m.group(1).strip(), text[:m.end()])
            if not calls:
                break
            if it == t_max:
                texts = [self.registry.limit_result(SEARCH_SPEC.name).text] * len(calls)
            else:
                actions_ = [Action(SEARCH_SPEC.name, q, 0, 0, True) for q, _ in calls.values()]
                texts = [r.text for r in self.registry.run(actions_)]
            for (i, (_, cut)), obs in zip(calls.items(), texts):
                prefix[i] += cut + obs
                obs_tokens[i] += len(self.tok.encode(obs, add_special_tokens=False))
                actions[i] += it < t_max
                limited[i] |= it == t_max
            todo = list(calls)
            encoded = [self.tok.encode(prefix[i], add_special_tokens=False) for i in todo]
            for i, ids in zip(todo, encoded):
                used[i] = len(ids) - len(rows[i])
            fresh = self._generate(encoded, [max(n - used[i], 1) for i in todo])
            for i, ids in zip(todo, fresh):
                responses[i] = self.tok.decode(ids)
        out = []
        for i in range(len(rows)):
            text = (prefix[i] + responses[i])[len(heads[i]):]
            kept = len(self.tok.encode(text, add_special_tokens=False)) - obs_tokens[i]
            out.append(ReferenceRow(text, kept, actions[i], limited[i]))
        return out
