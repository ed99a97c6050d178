"""A scripted policy: a real decoder whose weights make it follow a chosen token grammar.

Tests and benchmarks of the rollout need a policy that surely acts: opens a call, closes it,
reads the observation, answers. A random model almost never writes a tag, so this module sets the
weights of an ordinary `Decoder` so that it walks a Markov chain over token ids that the caller
designs (source token -> {successor: probability}):

  * random init, then the attention and MLP outputs are scaled down by `context_scale`: they still
    move every logit a little, so a wrong KV cache, position or mask still changes the log-probs;
  * `lm_head` is solved (minimum-norm least squares) so that, for every designed source u alone
    at position 0, logits = sharpness + log p(v | u) on its successors and 0 elsewhere.

With sharpness ~24, the chain is followed with probability ~1 - V * e^-24 per token.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from coa_jax.env.observation import ObservationFormat
from coa_jax.env.registry import Tool, ToolResult
from coa_jax.env.tags import SEARCH_SPEC, ToolSpec
from coa_jax.models.model_config import ModelConfig
from coa_jax.models.params import Params, abstract_params, forward, param_shardings
from coa_jax.sharding.rules import Sharder


@dataclasses.dataclass(frozen=True)
class Grammar:
    """A Markov chain over token ids: `transitions[u][v]` = p(v | u) (each row sums to 1)."""

    transitions: Mapping[int, Mapping[int, float]]

    def successors(self, token: int) -> Mapping[int, float]:
        return self.transitions.get(token, {})


class GrammarBuilder:
    """Collects transitions; a token may get one distribution only."""

    def __init__(self):
        self._t: dict[int, dict[int, float]] = {}

    def branch(self, source: int, successors: Mapping[int, float]) -> "GrammarBuilder":
        """`source` is followed by each successor with the given weight (normalised).

        Raises:
          ValueError: `source` already has a different distribution.
        """
        total = float(sum(successors.values()))
        dist = {int(v): w / total for v, w in successors.items() if w > 0}
        old = self._t.get(int(source))
        if old is not None and old != dist:
            raise ValueError(f"token {source} already leads to {old}; cannot also lead to {dist}")
        self._t[int(source)] = dist
        return self

    def chain(self, ids: Sequence[int]) -> "GrammarBuilder":
        """Each token of `ids` is followed by the next one."""
        for u, v in zip(ids, ids[1:]):
            self.branch(u, {v: 1.0})
        return self

    def build(self) -> Grammar:
        return Grammar({u: dict(d) for u, d in self._t.items()})


def _random_params(cfg: ModelConfig, rng: np.random.Generator) -> Params:
    """The decoder's init distribution, drawn with numpy (no init program to compile)."""
    def leaf(path, shape):
        name = path[-1].key
        if name == "scale":
            return np.ones(shape.shape, shape.dtype)
        if name.endswith("bias"):
            return np.zeros(shape.shape, shape.dtype)
        std = 1.0 if name == "embedding" else cfg.init_std
        return (rng.standard_normal(shape.shape) * std).astype(shape.dtype)

    return jax.tree_util.tree_map_with_path(leaf, abstract_params(cfg))


def scripted_params(cfg: ModelConfig, grammar: Grammar, sharder: Sharder, *, seed: int = 0,
                    sharpness: float = 24.0, context_scale: float = 0.05) -> Params:
    """Decoder weights that follow `grammar` (see the module docstring), in `sharder`'s shardings.

    Raises:
      ValueError: tied embeddings, more designed sources than the hidden size, or a token id
        outside the vocabulary.
    """
    if cfg.tie_embeddings:
        raise ValueError("scripted weights need an untied lm_head")
    sources = sorted(grammar.transitions)
    if len(sources) > cfg.hidden_size:
        raise ValueError(f"{len(sources)} designed tokens but hidden_size is {cfg.hidden_size}")
    used = set(sources) | {v for d in grammar.transitions.values() for v in d}
    if used and (min(used) < 0 or max(used) >= cfg.vocab_size):
        raise ValueError(f"token ids must be in [0, {cfg.vocab_size})")
    params = _random_params(cfg, np.random.default_rng(seed))
    params["layers"]["attn"]["o_kernel"] = params["layers"]["attn"]["o_kernel"] * context_scale
    params["layers"]["mlp"]["down_kernel"] = params["layers"]["mlp"]["down_kernel"] * context_scale
    if sources:
        tokens = jnp.asarray(sources, jnp.int32)[:, None]
        hidden = jax.jit(lambda p, t: forward(cfg, p, t, jnp.zeros_like(t), return_hidden=True)[0])
        hidden_UxE = hidden(params, tokens)
        hidden_UxE = np.asarray(hidden_UxE, np.float64)[:, 0]
        target_UxV = np.zeros((len(sources), cfg.vocab_size))
        for i, u in enumerate(sources):
            for v, p in grammar.transitions[u].items():
                target_UxV[i, v] = sharpness + np.log(p)
        w_ExV, *_ = np.linalg.lstsq(hidden_UxE, target_UxV, rcond=None)
        params["lm_head"] = w_ExV.astype(params["lm_head"].dtype)
    return jax.device_put(params, param_shardings(cfg, sharder))


@dataclasses.dataclass(frozen=True)
class AgentScript:
    """The text pieces of a scripted agent (each encoded with the policy's tokenizer).

    The walk: `newline` (the end of the prompt and of every observation) -> think words -> with
    `p_search` a call `<begin_search> query </end_search>`, with `p_answer` `</think>` and
    `\\boxed{answer}` eos, else back to the first think word. After the call's closing tag the
    policy writes its own observation `<search_result> simulated </search_result>` then `newline`
    (in the real environment the host has appended one before it gets there).
    """

    think: Sequence[str] = (" city", " was", " born")
    query: Sequence[str] = (" capital", " year")
    simulated: Sequence[str] = (" in", " the")
    answer: str = " Paris"
    newline: str = "\n"
    boxed: str = "\\boxed{"
    close_boxed: str = "}"
    p_search: float = 1.0
    p_answer: float = 0.0


def agent_grammar(codec, script: AgentScript, *, eos_id: int, open_tag: str = "<begin_search>",
                  close_tag: str = "</end_search>", result_open: str = "<search_result>",
                  result_close: str = "</search_result>", think_close: str = "</think>") -> Grammar:
    """The Markov chain of `script` over `codec`'s token ids (tags may be several tokens).

    Raises:
      ValueError: two pieces share a token that would need two different successors.
    """
    def enc(text: str) -> list[int]:
        return list(codec.encode(text, add_special_tokens=False))

    newline, think = enc(script.newline), [t for w in script.think for t in enc(w)]
    if len(newline) != 1:
        raise ValueError(f"the newline piece must be one token, got {newline}")
    g = GrammarBuilder()
    g.chain(newline + think)
    loop = 1.0 - script.p_search - script.p_answer
    call = enc(open_tag) + [t for w in script.query for t in enc(w)] + enc(close_tag)
    answer = enc(think_close) + enc(script.boxed) + enc(script.answer) + enc(script.close_boxed) + [eos_id]
    g.branch(think[-1], {call[0]: script.p_search, answer[0]: script.p_answer, think[0]: loop})
    g.chain(call + enc(result_open) + [t for w in script.simulated for t in enc(w)] + enc(result_close) + newline)
    g.chain(answer)
    return g.build()


class EchoSearch(Tool):
    """A search tool that answers `result 1: <prefix> <query>` after `latency_s` (tests, benchmarks)."""

    def __init__(self, prefix: str = "about", latency_s: float = 0.0, spec: ToolSpec = SEARCH_SPEC):
        self.spec, self.prefix, self.latency_s = spec, prefix, latency_s
        self.fmt = ObservationFormat.for_spec(spec)
        self.calls = 0

    def _answer(self, queries: Sequence[str], latency: float) -> list[ToolResult]:
        self.calls += len(queries)
        return [ToolResult(self.fmt.documents([f"{self.prefix} {q}"]), ok=True, latency_s=latency) for q in queries]

    def call(self, queries: Sequence[str]) -> list[ToolResult]:
        time.sleep(self.latency_s)
        return self._answer(queries, self.latency_s)

    async def acall(self, queries: Sequence[str]) -> list[ToolResult]:
        await asyncio.sleep(self.latency_s)
        return self._answer(queries, self.latency_s)
