"""Tokenised SFT examples with per-token provenance (`coa_jax.data.provenance.Provenance`).

A conversation becomes the token stream the rollout would have built for it:

    prompt   apply_chat_template(system/user turns, add_generation_prompt=True)    PROMPT
    policy   assistant text up to and including an action's closing tag          POLICY
    obs      the observation the host appends after it ("\\n\\n<search_result> ... </search_result>\\n\\n")
                                                                                  OBSERVATION
    policy   ... more reasoning and actions ...; text after `</think>`            POLICY / ANSWER
    end      the chat template's end-of-turn token(s)                             ANSWER

Each policy run and each observation is encoded on its own, exactly as the rollout appends
observation tokens after the policy's own tokens, so no token ever straddles the boundary
between what the model wrote and what the tool returned, whatever the tokenizer. Inside a
policy run, tokens are labelled by character span (the tokenizer's offset mapping): POLICY up
to the end of `</think>`, ANSWER after it. Stage 2 and stage 3 of SFT read the same examples
with different masks (`loss_mask(labels, include_observations=False / True)`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from coa_jax.data.formats.messages import Message
from coa_jax.data.provenance import Provenance
from coa_jax.env.observation import ObservationFormat
from coa_jax.env.tags import SEARCH_SPEC, THINK_CLOSE, ActionParser, ToolSpec

_END_MARK = "\u2063END\u2063"  # text no template produces, to find what follows assistant content


@dataclasses.dataclass(frozen=True)
class TokenizedExample:
    """Token ids and their provenance labels, both [L]; `truncated` tokens were cut off the end."""

    tokens: np.ndarray
    labels: np.ndarray
    truncated: int = 0

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def cut(self, max_len: int | None) -> TokenizedExample:
        """The first `max_len` tokens (counting what is cut)."""
        if max_len is None or len(self) <= max_len:
            return self
        return TokenizedExample(self.tokens[:max_len], self.labels[:max_len], self.truncated + len(self) - max_len)


class ChatTokenizer:
    """A Hugging Face fast tokenizer with a chat template, as the collators use it.

    Args:
      tokenizer: e.g. `transformers.AutoTokenizer.from_pretrained(world.tokenizer_dir)`.
      specs: the tools whose actions and observations appear in trajectories.
      formats: observation format per tool name (default: the reference format per spec).
    """

    def __init__(self, tokenizer, specs: Sequence[ToolSpec] = (SEARCH_SPEC,),
                 formats: Mapping[str, ObservationFormat] | None = None):  # fmt: skip
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("the collator needs a fast tokenizer (offset mappings)")
        self.tokenizer = tokenizer
        self.parser = ActionParser(specs)
        self.formats = {s.name: ObservationFormat.for_spec(s) for s in specs}
        self.formats.update(formats or {})
        self.end_of_turn = self._end_of_turn()

    def prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        """The prompt the rollout feeds: the chat template with the generation prompt."""
        ids = self.tokenizer.apply_chat_template([m.to_json() for m in messages], add_generation_prompt=True,
                                                 tokenize=True)  # fmt: skip
        if hasattr(ids, "keys"):  # newer transformers return a BatchEncoding
            ids = ids["input_ids"]
        return list(ids)

    def encode(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids of `text` and each token's character span."""
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]

    def _end_of_turn(self) -> list[int]:
        """The tokens the template puts after an assistant turn, up to the line end (e.g. <|im_end|>)."""
        try:
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": "q"}, {"role": "assistant", "content": _END_MARK}], tokenize=False)
        except Exception:  # a template that cannot render an assistant turn: fall back to eos
            text = ""
        suffix = text[text.rfind(_END_MARK) + len(_END_MARK):].strip() if _END_MARK in text else ""
        if suffix:
            return self.encode(suffix)[0]
        if self.tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has neither an end-of-turn in its chat template nor an eos token")
        return [self.tokenizer.eos_token_id]

    def observation_spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the observations the host appended after each action in `text`."""
        return [obs for _, obs in self.answered_calls(text)]

    def answered_calls(self, text: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
        """(call span, observation span) in characters for each action of `text` that the host answered."""
        out = []
        for action in self.parser.find_actions(text):
            fmt = self.formats[action.tool]
            head = fmt.lead + fmt.open_tag
            if not text.startswith(head, action.end):
                continue
            close = text.find(fmt.close_tag, action.end + len(head))
            if close < 0:
                continue
            end = close + len(fmt.close_tag)
            if text.startswith(fmt.trail, end):
                end += len(fmt.trail)
            out.append(((action.start, action.end), (action.end, end)))
        return out

    def assistant_tokens(self, text: str, start: int = 0, *, calls_as_prompt: bool = False) -> tuple[list[int], list[int]]:
        """Ids and labels of `text[start:]` as the continuation of assistant text `text[:start]`.

        Observations are encoded on their own; policy runs are split at `start` and at observation
        boundaries and labelled POLICY / ANSWER by whether a token starts before the end of
        `</think>`. With `calls_as_prompt`, the tokens of each answered call (from its opening tag
        through its closing tag) are labelled PROMPT: text written around tool calls, without the
        calls as targets (a base model that reads results but never learns to call).
        """
        answered = self.answered_calls(text)
        calls = [call for call, _ in answered] if calls_as_prompt else []
        cut = text.find(THINK_CLOSE)
        think_end = cut + len(THINK_CLOSE) if cut >= 0 else len(text) + 1
        pieces: list[tuple[int, int, bool]] = []  # (start, end, is_observation)
        at = 0
        for _, (lo, hi) in answered:
            pieces += [(at, lo, False), (lo, hi, True)]
            at = hi
        pieces.append((at, len(text), False))
        ids: list[int] = []
        labels: list[int] = []
        for lo, hi, is_obs in pieces:
            lo = max(lo, start)
            if lo >= hi:
                continue
            piece_ids, offsets = self.encode(text[lo:hi])
            ids += piece_ids
            if is_obs:
                labels += [int(Provenance.OBSERVATION)] * len(piece_ids)
            else:
                labels += [int(Provenance.PROMPT if any(c0 <= lo + a < c1 for c0, c1 in calls)
                               else Provenance.ANSWER if lo + a >= think_end else Provenance.POLICY)
                           for a, _ in offsets]
        return ids, labels

    def end_labels(self, text: str) -> list[int]:
        """Labels of the end-of-turn tokens: part of the answer when there is one."""
        label = Provenance.ANSWER if THINK_CLOSE in text else Provenance.POLICY
        return [int(label)] * len(self.end_of_turn)


def _example(ids: list[int], labels: list[int], max_len: int | None) -> TokenizedExample:
    return TokenizedExample(np.asarray(ids, np.int32), np.asarray(labels, np.int8)).cut(max_len)


def tokenize_conversation(messages: Sequence[Message], tok: ChatTokenizer, *, max_len: int | None = None,
                          calls_as_prompt: bool = False) -> TokenizedExample:  # fmt: skip
    """One SFT example from a conversation whose last message is the assistant's trajectory.

    Args:
      messages: system/user turns, then the assistant turn (e.g. `Conversation.messages`).
      tok: the chat tokenizer.
      max_len: cut longer examples from the end (counted in `truncated`).
      calls_as_prompt: label the assistant's answered tool calls PROMPT (`ChatTokenizer.assistant_tokens`).

    Raises:
      ValueError: the last message is not an assistant turn.
    """
    if not messages or messages[-1].role != "assistant":
        raise ValueError("an SFT conversation must end with the assistant's turn")
    prompt = tok.prompt_ids(messages[:-1])
    content = messages[-1].content
    ids, labels = tok.assistant_tokens(content, calls_as_prompt=calls_as_prompt)
    ids = prompt + ids + tok.end_of_turn
    labels = [int(Provenance.PROMPT)] * len(prompt) + labels + tok.end_labels(content)
    return _example(ids, labels, max_len)
