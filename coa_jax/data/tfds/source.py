"""Prepared question sets as random-access data sources of typed records.

    ds = world_questions("runs/world", data_dir="runs/tfds")      # builds once, then reuses
    train = ds.splits["train"]                                   # QASource
    len(train), train[0]                                         # QARecord
    again = QADataset.open(ds.path)                              # read back without the builder

Building writes ArrayRecord files through `tensorflow_datasets` (no TensorFlow installed or
needed); reading uses `tfds.builder_from_directory(...).as_data_source(split)`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from coa_jax.data.tfds.records import QARecord


class QASource:
    """Random access to one split: `len(src)`, `src[i] -> QARecord`, `src.__getitems__(indices)`.

    Works as a `grain.MapDataset.source` (it has `__len__` and `__getitem__`).
    """

    def __init__(self, source):
        self._source = source

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> QARecord:
        if not -len(self) <= index < len(self):
            raise IndexError(f"record {index} of a split with {len(self)} records")
        return QARecord.from_example(self._source[index % len(self)])

    def __getitems__(self, indices: Sequence[int]) -> list[QARecord]:
        return [QARecord.from_example(ex) for ex in self._source.__getitems__(list(indices))]

    def __repr__(self) -> str:
        return f"QASource({self._source!r}, {len(self)} records)"


@dataclasses.dataclass(frozen=True)
class QADataset:
    """A prepared question set: its directory and one QASource per split."""

    path: str
    splits: Mapping[str, QASource]

    @classmethod
    def open(cls, path: str | os.PathLike) -> QADataset:
        """Opens a prepared dataset directory (`.../<name>/<config>/<version>`)."""
        import tensorflow_datasets as tfds

        builder = tfds.builder_from_directory(os.fspath(path))
        return cls(os.fspath(path), {s: QASource(builder.as_data_source(s)) for s in builder.info.splits})


@contextlib.contextmanager
def _quiet_tfds():
    """TFDS warns about every configuration not declared in BUILDER_CONFIGS, and ours are named
    after a digest of their sources on purpose: silence absl warnings while building."""
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()
    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.ERROR)
    try:
        yield
    finally:
        absl.setLevel(level)


def _prepare(make_builder: Callable[[], Any]) -> QADataset:
    with _quiet_tfds():
        builder = make_builder()
        builder.download_and_prepare()
    return QADataset(os.fspath(builder.data_dir),
                     {s: QASource(builder.as_data_source(s)) for s in builder.info.splits})  # fmt: skip


def _data_dir(data_dir: str | os.PathLike | None, default: str) -> str:
    return os.fspath(data_dir) if data_dir is not None else default


def world_questions(world_dir: str | os.PathLike, *, style: str = "compact",
                    data_dir: str | os.PathLike | None = None) -> QADataset:  # fmt: skip
    """The world's question splits (train/dev/test), built under `data_dir` (default WORLD/tfds)."""
    from coa_jax.data.tfds.builders import WorldQuestions

    root = _data_dir(data_dir, os.path.join(os.fspath(world_dir), "tfds"))
    return _prepare(lambda: WorldQuestions(world_dir=world_dir, style=style, data_dir=root, file_format="array_record"))


def verl_qa(files: Mapping[str, str | os.PathLike], *, data_dir: str | os.PathLike,
            strict: bool = True) -> QADataset:  # fmt: skip
    """Verl parquet prompt files (split -> path) as a QA dataset under `data_dir`."""
    from coa_jax.data.tfds.builders import VerlQA

    return _prepare(lambda: VerlQA(files=files, strict=strict, data_dir=os.fspath(data_dir),
                                   file_format="array_record"))  # fmt: skip


def benchmark_qa(benchmark: str, *, data_dir: str | os.PathLike,
                 files: Mapping[str, str | os.PathLike] | None = None,
                 source_dir: str | os.PathLike | None = None, strict: bool = True) -> QADataset:  # fmt: skip
    """A public benchmark from local files (split -> path, or a directory of them)."""
    from coa_jax.data.tfds.builders import BenchmarkQA

    return _prepare(lambda: BenchmarkQA(benchmark=benchmark, files=files, source_dir=source_dir, strict=strict,
                                        data_dir=os.fspath(data_dir), file_format="array_record"))  # fmt: skip
