"""TFDS builders for the question sets, written as ArrayRecord files (no TensorFlow needed).

- `WorldQuestions`: a built world's train/dev/test questions (with dataset, type, hops, tier),
  prompts in a chosen instruction style.
- `VerlQA`: verl parquet prompt files (the reference's format), one file per split.
- `BenchmarkQA`: a public benchmark (NQ, TriviaQA, HotpotQA, 2Wiki, MuSiQue, Bamboogle) from local
  files in its own format (`benchmarks`).

Every builder keeps the source order (`disable_shuffling`), so record i of a split is the i-th
question of its source, and names its configuration after a digest of the source files and
options: a changed source builds a new dataset beside the old one instead of reusing it.
Builders are not registered in the TFDS catalog: make them with the functions of `source`.
"""

from __future__ import annotations

import abc
import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence

import tensorflow_datasets as tfds

from coa_jax.data.formats.messages import Message
from coa_jax.data.formats.verl_parquet import read_verl_parquet
from coa_jax.data.tfds.benchmarks import BENCHMARKS, find_files, read_benchmark
from coa_jax.data.tfds.records import QARecord, features
from coa_jax.data.world.prompt import DATA_SOURCE, instruction, user_prompt
from coa_jax.data.world.store import load_world


def digest(paths: Sequence[str], *options: str) -> str:
    """A short hex digest of files' bytes and option strings (the config name's suffix)."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    for option in options:
        h.update(option.encode() + b"\0")
    return h.hexdigest()[:12]


class _QABuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Common part: the QARecord features, source order kept, one generator per split."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "QARecord features."}
    # TFDS looks for checksum and metadata files beside a builder's module, through the
    # `importlib_resources` backport when the module is in a package; these builders download
    # nothing and need no such files, so there is no code path to look in.
    code_path = None

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(builder=self, features=features(), disable_shuffling=True,
                                     description=type(self).__doc__)  # fmt: skip

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(split) for split in self.source_splits()}

    def _generate_examples(self, split: str) -> Iterator[tuple[int, dict]]:
        for i, record in enumerate(self.records(split)):
            yield i, record.to_example()

    @abc.abstractmethod
    def source_splits(self) -> Sequence[str]:
        """The splits this source has."""

    @abc.abstractmethod
    def records(self, split: str) -> Iterator[QARecord]:
        """The records of `split`, in source order."""


class WorldQuestions(_QABuilder, skip_registration=True):
    """Questions of the embedded world, per split, with dataset / type / hops / tier."""

    name = "coa_world_questions"

    def __init__(self, *, world_dir: str | os.PathLike, style: str = "compact", **kwargs):
        instruction(style)  # fails early on an unknown style
        self._world_dir, self._style = os.fspath(world_dir), style
        paths = [os.path.join(self._world_dir, "questions", f"{s}.jsonl") for s in ("train", "dev", "test")]
        kwargs.setdefault("config", tfds.core.BuilderConfig(name=f"{style}_{digest(paths, style)}"))
        super().__init__(**kwargs)

    def source_splits(self) -> Sequence[str]:
        return ("train", "dev", "test")

    def records(self, split: str) -> Iterator[QARecord]:
        for q in load_world(self._world_dir).questions(split):
            yield QARecord(q.id, q.question, q.golds, q.dataset, q.split, q.type, q.hops, q.tier, DATA_SOURCE,
                           (Message("user", user_prompt(q.question, self._style)),))  # fmt: skip


class VerlQA(_QABuilder, skip_registration=True):
    """QA prompts from verl parquet files (reference format), one file per split."""

    name = "coa_verl_qa"

    def __init__(self, *, files: Mapping[str, str | os.PathLike], strict: bool = True, **kwargs):
        self._files = {split: os.fspath(p) for split, p in files.items()}
        self._strict = strict
        names = sorted(self._files)
        kwargs.setdefault("config", tfds.core.BuilderConfig(
            name=f"h{digest([self._files[s] for s in names], *names, str(strict))}"))  # fmt: skip
        super().__init__(**kwargs)

    def source_splits(self) -> Sequence[str]:
        return tuple(self._files)

    def records(self, split: str) -> Iterator[QARecord]:
        for p in read_verl_parquet(self._files[split], strict=self._strict).rows:
            extra = p.extra
            yield QARecord(p.id, p.question, p.golds, p.dataset, p.split or split, type=str(extra.get("type") or ""),
                           hops=int(extra.get("hops") or 0), tier=str(extra.get("tier") or ""),
                           data_source=p.data_source, prompt=p.prompt)  # fmt: skip


class BenchmarkQA(_QABuilder, skip_registration=True):
    """A public benchmark from local files in its published format."""

    name = "coa_benchmark_qa"

    def __init__(self, *, benchmark: str, files: Mapping[str, str | os.PathLike] | None = None,
                 source_dir: str | os.PathLike | None = None, strict: bool = True, **kwargs):  # fmt: skip
        if benchmark not in BENCHMARKS:
            raise ValueError(f"unknown benchmark {benchmark!r}; known: {BENCHMARKS}")
        if (files is None) == (source_dir is None):
            raise ValueError("give exactly one of files= (split -> path) or source_dir= (a directory)")
        self._benchmark, self._strict = benchmark, strict
        self._files = {s: os.fspath(p) for s, p in (files or find_files(source_dir)).items()}
        names = sorted(self._files)
        kwargs.setdefault("config", tfds.core.BuilderConfig(
            name=f"{benchmark}_{digest([self._files[s] for s in names], *names, str(strict))}"))  # fmt: skip
        super().__init__(**kwargs)

    def source_splits(self) -> Sequence[str]:
        return tuple(self._files)

    def records(self, split: str) -> Iterator[QARecord]:
        yield from read_benchmark(self._benchmark, self._files[split], split, strict=self._strict).rows
