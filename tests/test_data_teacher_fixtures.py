"""Shared, built-once inputs of the teacher / TFDS / collate tests (no tests here).

One tiny world and one teacher run per test session: every function is cached, and the files
live in a temporary directory removed at exit.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile

from coa_jax.data.teacher import TeacherStats, write_teacher_data
from coa_jax.data.world import build_world, load_world
from coa_jax.data.world.store import WorldFiles

SEED = 0


@functools.lru_cache(maxsize=None)
def _root() -> str:
    root = tempfile.mkdtemp(prefix="coa_data_tests_")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


@functools.lru_cache(maxsize=None)
def tiny_world_dir() -> str:
    """A tiny world (seed 0) with its tokenizer."""
    path = os.path.join(_root(), "world")
    build_world(path, seed=SEED, size="tiny")
    return path


@functools.lru_cache(maxsize=None)
def tiny_world() -> WorldFiles:
    return load_world(tiny_world_dir())


@functools.lru_cache(maxsize=None)
def tiny_teacher() -> tuple[str, TeacherStats]:
    """(directory of the teacher files, their stats) for the tiny world."""
    out = os.path.join(_root(), "teacher")
    return out, write_teacher_data(tiny_world_dir(), out, seed=SEED)


@functools.lru_cache(maxsize=None)
def world_hf_tokenizer():
    """The tiny world's tokenizer through transformers."""
    import transformers

    return transformers.AutoTokenizer.from_pretrained(load_world(tiny_world_dir()).tokenizer_dir)
