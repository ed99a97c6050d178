"""One QA record type for every question set (world splits, verl parquet files, benchmarks), and
its TFDS feature spec.

A record carries what training and evaluation need: the question, its gold answers, where it
comes from (`dataset`, `split`, `data_source`), what kind it is (`type`, `hops`, `tier`; empty /
0 when the source does not say), and the chat `prompt` to sample from (empty when the source
has none: build one with `coa_jax.data.world.prompt.user_prompt`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from coa_jax.data.formats.messages import Message
from coa_jax.data.formats.verl_parquet import QAPrompt


@dataclasses.dataclass(frozen=True)
class QARecord:
    """A question with gold answers and metadata (see the module docstring)."""

    id: str
    question: str
    golds: tuple[str, ...]
    dataset: str
    split: str
    type: str = ""
    hops: int = 0
    tier: str = ""
    data_source: str = ""
    prompt: tuple[Message, ...] = ()

    def to_example(self) -> dict[str, Any]:
        """The TFDS example (see `features`)."""
        return {
            "id": self.id, "question": self.question, "golds": list(self.golds), "dataset": self.dataset,
            "split": self.split, "type": self.type, "hops": np.int32(self.hops), "tier": self.tier,
            "data_source": self.data_source,
            "prompt": [{"role": m.role, "content": m.content} for m in self.prompt],
        }  # fmt: skip

    @classmethod
    def from_example(cls, ex: Mapping[str, Any]) -> QARecord:
        """A decoded TFDS example (text fields come back as bytes without TensorFlow) -> QARecord."""
        prompt = ex["prompt"]
        return cls(
            id=_text(ex["id"]), question=_text(ex["question"]), golds=tuple(_text(g) for g in ex["golds"]),
            dataset=_text(ex["dataset"]), split=_text(ex["split"]), type=_text(ex["type"]), hops=int(ex["hops"]),
            tier=_text(ex["tier"]), data_source=_text(ex["data_source"]),
            prompt=tuple(Message(_text(r), _text(c)) for r, c in zip(prompt["role"], prompt["content"])),
        )  # fmt: skip

    def to_qa_prompt(self, index: int = 0) -> QAPrompt:
        """The record as a verl prompt row (the type the GRPO prompt readers use)."""
        extra = {"id": self.id, "type": self.type, "hops": self.hops, "tier": self.tier, "dataset": self.dataset}
        return QAPrompt(data_source=self.data_source or self.dataset, prompt=self.prompt, golds=self.golds,
                        index=index, split=self.split, extra=extra)  # fmt: skip


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def features():
    """The TFDS `FeaturesDict` of a QARecord (imported lazily: TFDS is only needed to build)."""
    import tensorflow_datasets as tfds

    text = tfds.features.Text
    return tfds.features.FeaturesDict({
        "id": text(), "question": text(), "golds": tfds.features.Sequence(text()), "dataset": text(),
        "split": text(), "type": text(), "hops": np.int32, "tier": text(), "data_source": text(),
        "prompt": tfds.features.Sequence({"role": text(), "content": text()}),
    })  # fmt: skip
