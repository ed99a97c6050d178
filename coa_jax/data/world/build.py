"""Builds the embedded world and writes it to a directory.

    DIR/corpus.jsonl              search corpus, FlashRAG rows {"id", "title", "contents"}
    DIR/pretrain.txt              popular facts as plain statements, one per line
    DIR/entities.jsonl            {"id", "kind", "subkind", "name", "aliases", "famous", "passages"}
    DIR/facts.jsonl               {"id", "subject", "relation", "object", "value", "tier", "split", "passages"}
                                  (split: the owner split of a tail fact, "" when none owns it)
    DIR/questions/SPLIT.jsonl     full questions (schema.Question: golds, chain of steps, passages)
    DIR/questions/SPLIT.parquet   the same as verl prompt rows (reference format)
    DIR/stats.json                counts of all of the above
    DIR/tokenizer/                Hugging Face tokenizer trained on the world's text

Deterministic: one seed gives byte-identical files (each stage draws from its own
`random.Random` seeded from the seed and the stage name; iteration orders are fixed).

Order: entities, pretraining text, question candidates, splits (which decide the owner of each
tail fact), then the corpus (whose passages keep dev and test facts apart from what train
questions read, see `corpus`), then each question's supporting passages.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import random
from collections.abc import Mapping
from typing import Any

from coa_jax.data.formats.jsonfile import write_json, write_jsonl
from coa_jax.data.formats.verl_parquet import write_verl_parquet
from coa_jax.data.world import tokenizer as world_tokenizer
from coa_jax.data.world.corpus import Corpus, pretrain_lines, render_corpus
from coa_jax.data.world.entities import sample_world
from coa_jax.data.world.leakage import MentionIndex, corpus_leaks, pretrain_leaks, question_leaks
from coa_jax.data.world.prompt import INSTRUCTION, to_qa_prompt
from coa_jax.data.world.questions import candidate_pools, link_passages
from coa_jax.data.world.schema import DATASETS, SPLITS, Question, World
from coa_jax.data.world.sizes import SIZES, WorldSize
from coa_jax.data.world.splits import assign_splits


@dataclasses.dataclass(frozen=True)
class BuiltWorld:
    """Everything the build produced, in memory."""

    seed: int
    size: WorldSize
    world: World
    corpus: Corpus
    pretrain: tuple[str, ...]
    questions: tuple[Question, ...]
    dropped_pretrain: int
    dropped_questions: int
    owner: Mapping[str, str] = dataclasses.field(default_factory=dict)  # tail fact id -> owner split

    def split(self, name: str) -> tuple[Question, ...]:
        return tuple(q for q in self.questions if q.split == name)


def generate(seed: int = 0, size: str | WorldSize = "small") -> BuiltWorld:
    """Builds the world in memory (no files, no tokenizer).

    Raises:
      RuntimeError: a no-leakage rule fails (a bug: the construction guarantees them).
    """
    spec = SIZES[size] if isinstance(size, str) else size

    def rng(stage: str) -> random.Random:
        return random.Random(f"{seed}/{stage}")

    world = sample_world(rng("entities"), spec)
    index = MentionIndex(world)
    lines = pretrain_lines(world, rng("pretrain"))
    kept = [line for line in lines if not pretrain_leaks([line], world, index)]
    result = assign_splits(candidate_pools(world, rng("questions")), world, spec)
    corpus = render_corpus(world, rng("corpus"), result.owner)
    questions = tuple(link_passages(q, corpus) for q in result.questions)
    problems = question_leaks(questions, world, index) + pretrain_leaks(kept, world, index)
    problems += corpus_leaks(corpus.passages, corpus.passage_level, result.owner, world, index, questions)
    if problems:
        raise RuntimeError("leakage in the built world:\n" + "\n".join(problems[:10]))
    return BuiltWorld(seed, spec, world, corpus, tuple(kept), questions, len(lines) - len(kept),
                      result.dropped_for_leakage, dict(result.owner))  # fmt: skip


def tokenizer_texts(built: BuiltWorld) -> list[str]:
    """The tokenizer's training text, in a fixed order."""
    texts = [INSTRUCTION, *world_tokenizer.FORMAT_SAMPLES]
    texts += [p.contents for p in built.corpus.passages]
    texts += list(built.pretrain)
    texts += ["\n".join((q.question, *q.golds, *(s.query for s in q.steps))) for q in built.questions]
    return texts


def write_world(built: BuiltWorld, out_dir: str | os.PathLike, *, with_tokenizer: bool = True) -> dict[str, Any]:
    """Writes the files listed in the module docstring; returns the stats."""
    os.makedirs(os.path.join(out_dir, "questions"), exist_ok=True)
    write_jsonl(os.path.join(out_dir, "corpus.jsonl"), (p.to_json() for p in built.corpus.passages))
    with open(os.path.join(out_dir, "pretrain.txt"), "w", encoding="utf-8", newline="\n") as f:
        f.writelines(line + "\n" for line in built.pretrain)
    write_jsonl(os.path.join(out_dir, "entities.jsonl"), (
        {"id": e.id, "kind": e.kind, "subkind": e.subkind, "name": e.name, "aliases": list(e.aliases),
         "famous": e.famous, "passages": list(built.corpus.entity_passages[e.id])}
        for e in built.world.entities))  # fmt: skip
    write_jsonl(os.path.join(out_dir, "facts.jsonl"), (
        {"id": f.id, "subject": f.subject, "relation": f.relation, "object": f.object, "value": f.value,
         "tier": f.tier, "split": built.owner.get(f.id, ""), "passages": list(built.corpus.fact_passages[f.id])}
        for f in built.world.facts))  # fmt: skip
    for split in SPLITS:
        questions = built.split(split)
        write_jsonl(os.path.join(out_dir, "questions", f"{split}.jsonl"), (q.to_json() for q in questions))
        write_verl_parquet(os.path.join(out_dir, "questions", f"{split}.parquet"),
                           [to_qa_prompt(q, i) for i, q in enumerate(questions)])  # fmt: skip
    vocab = 0
    if with_tokenizer:
        tok = world_tokenizer.train_tokenizer(tokenizer_texts(built), built.size.vocab_size)
        world_tokenizer.save_hf_tokenizer(tok, os.path.join(out_dir, "tokenizer"))
        vocab = tok.get_vocab_size()
    stats = world_stats(built, vocab)
    write_json(os.path.join(out_dir, "stats.json"), stats)
    return stats


def build_world(out_dir: str | os.PathLike, seed: int = 0, size: str | WorldSize = "small",
                *, with_tokenizer: bool = True) -> dict[str, Any]:  # fmt: skip
    """`generate` then `write_world`; returns the stats."""
    return write_world(generate(seed, size), out_dir, with_tokenizer=with_tokenizer)


def _count(items) -> dict[str, int]:
    return dict(sorted(collections.Counter(items).items()))


def world_stats(built: BuiltWorld, vocab_size: int) -> dict[str, Any]:
    """Counts by entity kind, relation, tier, dataset, type, hops and split."""
    w, qs = built.world, built.questions
    lengths = [len(p.text.split()) for p in built.corpus.passages]
    return {
        "seed": built.seed,
        "size": built.size.name,
        "entities": _count(e.kind for e in w.entities),
        "entity_subkinds": _count(f"{e.kind}/{e.subkind}" for e in w.entities if e.subkind),
        "facts": {
            "total": len(w.facts),
            "by_tier": _count(f.tier for f in w.facts),
            "popular_fraction": round(sum(f.tier == "popular" for f in w.facts) / len(w.facts), 3),
            "by_relation": {r: _count(f.tier for f in w.facts if f.relation == r)
                            for r in dict.fromkeys(f.relation for f in w.facts)},  # fmt: skip
            "tail_by_owner_split": {s: sum(v == s for v in built.owner.values()) for s in SPLITS},
            "entities_linked_by_owned_facts": {
                s: len({e for f in w.facts if built.owner.get(f.id) == s for e in (f.subject, f.object) if e})
                for s in SPLITS
            },
        },
        "corpus": {
            "passages": len(lengths),
            "words_min": min(lengths),
            "words_mean": round(sum(lengths) / len(lengths), 1),
            "words_max": max(lengths),
            "passages_per_entity": _count(str(len(v)) for v in built.corpus.entity_passages.values()),
            "passages_by_level": {s: sum(v == s for v in built.corpus.passage_level.values()) for s in SPLITS},
        },
        "pretrain": {"lines": len(built.pretrain), "dropped_for_leakage": built.dropped_pretrain},
        "questions": {
            "total": len(qs),
            "by_split": {s: sum(q.split == s for q in qs) for s in SPLITS},
            "by_split_dataset": {s: {d: sum(q.split == s and q.dataset == d for q in qs) for d in DATASETS}
                                 for s in SPLITS},  # fmt: skip
            "by_dataset_type": {d: _count(q.type for q in qs if q.dataset == d) for d in DATASETS},
            "by_hops": _count(str(q.hops) for q in qs),
            "by_split_tier": {s: _count(q.tier for q in qs if q.split == s) for s in SPLITS},
            "by_dataset_tier": {d: _count(q.tier for q in qs if q.dataset == d) for d in DATASETS},
            "yes_no": sum(q.golds[0] in ("yes", "no") for q in qs),
            "tail_facts_used_by_split": {
                s: len({f for q in qs if q.split == s for f in q.facts if w.fact_by_id[f].tier == "tail"})
                for s in SPLITS
            },
            "dropped_for_leakage": built.dropped_questions,
        },
        "tokenizer": {"vocab_size": vocab_size},
    }
