"""Tags as token-id stop sequences, for any tokenizer.

With a tokenizer that has the tags as single tokens, a tag is one id. With an ordinary BPE (e.g.
SmolLM2's) a tag is several tokens whose first one may merge with the text before it (`" </"`,
`".</"`), so one fixed id sequence would miss it in some contexts. Each tag is therefore encoded
after several contexts and every distinct id sequence that lies *inside* the tag and covers most of
it becomes a variant; the decode loop stops on any variant, and the host confirms on the decoded
text (a variant that matched outside a real tag just resumes decoding). The host never re-encodes
generated text: decoding is only used to read the action.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

from coa_jax.rollout.sampler import ACTION, HALT, MARK

CONTEXTS = ("", " ", "\n", "\n\n", "a", ".", "?", ") ", "a ", ": ")


class TextCodec(Protocol):
    """What the rollout needs of a tokenizer (Hugging Face tokenizers satisfy it)."""

    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = ...) -> str: ...


def tag_variants(codec: TextCodec, tag: str, contexts: Sequence[str] = CONTEXTS,
                 min_cover: float = 0.5) -> list[tuple[int, ...]]:
    """Token-id sequences that end every common tokenisation of `tag`.

    Args:
      codec: the tokenizer.
      tag: the text, e.g. "</end_search>".
      contexts: texts placed before the tag when encoding it.
      min_cover: a variant made of tokens inside the tag must decode to at least this fraction of
        the tag's characters; otherwise the tokens that reach into the context are kept too.

    Returns:
      Distinct sequences, shortest first.
    """
    if not tag:
        raise ValueError("empty tag")
    out: dict[tuple[int, ...], None] = {}
    for context in contexts:
        ids = list(codec.encode(context + tag, add_special_tokens=False))
        if not codec.decode(ids).endswith(tag):
            continue  # the tokenizer normalises this context away; nothing reliable to match
        inside = None
        for k in range(len(ids) - 1, -1, -1):
            text = codec.decode(ids[k:])
            if not tag.endswith(text):
                break
            inside = k
        if inside is not None and len(codec.decode(ids[inside:])) >= min_cover * len(tag):
            out[tuple(ids[inside:])] = None
            continue
        for k in range(len(ids) - 1, -1, -1):  # shortest suffix that holds the whole tag
            if tag in codec.decode(ids[k:]):
                out[tuple(ids[k:])] = None
                break
    if not out:
        raise ValueError(f"could not find a token sequence for {tag!r}")
    return sorted(out, key=len)


@dataclasses.dataclass(frozen=True)
class StopEntry:
    """One stop sequence: its ids, kind (sampler HALT/ACTION/MARK), and what it stands for."""

    ids: tuple[int, ...]
    kind: int
    name: str  # "eos", a tool name (ACTION), "open:<tool>" / "close:<tool>" (MARK), "think_close"


@dataclasses.dataclass(frozen=True)
class StopSet:
    """Every sequence the decode loop watches, indexed as the sampler reports them."""

    entries: tuple[StopEntry, ...]

    @property
    def sequences(self) -> list[list[int]]:
        return [list(e.ids) for e in self.entries]

    @property
    def kinds(self) -> list[int]:
        return [e.kind for e in self.entries]

    def name(self, index: int) -> str:
        return self.entries[index].name

    def kind(self, index: int) -> int:
        return self.entries[index].kind


def build_stop_set(codec: TextCodec, eos_ids: Sequence[int], *, action_tags: dict[str, str],
                   result_tags: dict[str, tuple[str, str]], think_close: str | None) -> StopSet:
    """The stop set of an agent rollout.

    Args:
      codec: the tokenizer.
      eos_ids: ids that end generation (HALT).
      action_tags: tool name -> closing tag of its call (ACTION).
      result_tags: tool name -> (open, close) of its observation (MARK; used to label observations the
        policy writes itself).
      think_close: the end-of-thinking tag (MARK; tokens after it are the answer), or None.
    """
    entries = [StopEntry((int(t),), HALT, "eos") for t in dict.fromkeys(eos_ids)]
    for name, tag in action_tags.items():
        entries += [StopEntry(v, ACTION, name) for v in tag_variants(codec, tag)]
    for name, (open_tag, close_tag) in result_tags.items():
        entries += [StopEntry(v, MARK, f"open:{name}") for v in tag_variants(codec, open_tag)]
        entries += [StopEntry(v, MARK, f"close:{name}") for v in tag_variants(codec, close_tag)]
    if think_close:
        entries += [StopEntry(v, MARK, "think_close") for v in tag_variants(codec, think_close)]
    return StopSet(tuple(entries))
