"""In-process BM25 retrieval over a `corpus.jsonl` (bm25s), the index cached on disk.

The index is built once per (corpus bytes, settings, bm25s version) and saved under
`<cache_dir>/<corpus stem>-<key>/`; `cache_dir` defaults to `.bm25_index/` next to the corpus.
Like FlashRAG's bm25s backend it indexes `contents` with English stopwords removed; FlashRAG also
stems with PyStemmer (`stemmer="english"`), which needs that package installed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
from typing import Any, Sequence

from coa_jax.env.corpus import Hit, load_corpus
from coa_jax.env.observation import TokenCounter
from coa_jax.env.registry import check_options, format_from_options
from coa_jax.env.tags import ToolSpec

_INDEX_FORMAT = 1


def import_bm25s():
    """Imports bm25s without letting it start JAX.

    bm25s imports JAX when it can and runs an op on it, which initialises the accelerator backend
    (on a TPU host: claims the chips the trainer needs). Unless JAX is already loaded, it is hidden
    for the import and bm25s falls back to numpy.
    """
    if "bm25s" in sys.modules or "jax" in sys.modules:
        import bm25s

        return bm25s
    sys.modules["jax"] = None  # type: ignore[assignment]  # makes `import jax` raise ImportError
    try:
        import bm25s
    finally:
        if sys.modules.get("jax", 0) is None:
            del sys.modules["jax"]
    return bm25s


@dataclasses.dataclass(frozen=True)
class BM25Settings:
    """BM25 scoring and tokenisation (part of the index cache key).

    Attributes:
      k1, b, method: bm25s scoring parameters ("lucene", "robertson", "atire", "bm25l", "bm25+").
      stopwords: "en" or None.
      stemmer: None, or a PyStemmer algorithm name such as "english" (needs PyStemmer).
    """

    k1: float = 1.5
    b: float = 0.75
    method: str = "lucene"
    stopwords: str | None = "en"
    stemmer: str | None = None


def _make_stemmer(name: str | None):
    if name is None:
        return None
    try:
        import Stemmer  # PyStemmer
    except ImportError:
        raise ImportError(f"stemmer={name!r} needs the PyStemmer package; install it or use stemmer=None") from None
    return Stemmer.Stemmer(name)


class BM25Retriever:
    """BM25 over a corpus file; batched queries; thread-safe.

    Args:
      corpus_path: the `corpus.jsonl`.
      settings: scoring/tokenisation settings.
      cache_dir: where indexes are cached (default: `.bm25_index/` next to the corpus).

    Raises:
      FileNotFoundError / ValueError: see `load_corpus`.
    """

    def __init__(self, corpus_path: str | os.PathLike, *, settings: BM25Settings = BM25Settings(),
                 cache_dir: str | os.PathLike | None = None):
        self._bm25s = import_bm25s()
        self.corpus_path = os.fspath(corpus_path)
        self.settings = settings
        self.docs, corpus_sha = load_corpus(self.corpus_path)
        key_src = json.dumps({"corpus_sha256": corpus_sha, "settings": dataclasses.asdict(settings),
                              "bm25s": self._bm25s.__version__, "format": _INDEX_FORMAT}, sort_keys=True)
        key = hashlib.sha256(key_src.encode()).hexdigest()[:20]
        root = os.fspath(cache_dir) if cache_dir is not None else os.path.join(
            os.path.dirname(os.path.abspath(self.corpus_path)), ".bm25_index")
        stem = os.path.splitext(os.path.basename(self.corpus_path))[0]
        self.index_dir = os.path.join(root, f"{stem}-{key}")
        self._lock = threading.Lock()
        self._queries = 0
        self._batches = 0
        self.loaded_from_cache = os.path.exists(os.path.join(self.index_dir, "meta.json"))
        if not self.loaded_from_cache:
            self._build(root)
        self._load()

    @property
    def num_docs(self) -> int:
        return len(self.docs)

    def _tokenizer(self):
        s = self.settings
        return self._bm25s.tokenization.Tokenizer(stopwords=s.stopwords or [], stemmer=_make_stemmer(s.stemmer))

    def _build(self, root: str) -> None:
        os.makedirs(root, exist_ok=True)
        tmp = tempfile.mkdtemp(dir=root, prefix=".building-")
        try:
            tokenizer = self._tokenizer()
            ids = tokenizer.tokenize([d.contents for d in self.docs], update_vocab=True, return_as="ids",
                                     show_progress=False)
            s = self.settings
            index = self._bm25s.BM25(k1=s.k1, b=s.b, method=s.method)
            index.index(tokenizer.to_tokenized_tuple(ids), show_progress=False)
            index.save(tmp, show_progress=False)
            tokenizer.save_vocab(tmp)
            with open(os.path.join(tmp, "meta.json"), "w") as f:  # written last: marks a complete index
                json.dump({"num_docs": len(self.docs), "settings": dataclasses.asdict(s)}, f)
            try:
                os.replace(tmp, self.index_dir)
            except OSError:  # another process finished the same index first
                if not os.path.exists(os.path.join(self.index_dir, "meta.json")):
                    raise
        finally:
            if os.path.exists(tmp):
                shutil.rmtree(tmp, ignore_errors=True)

    def _load(self) -> None:
        with open(os.path.join(self.index_dir, "meta.json")) as f:
            meta = json.load(f)
        if meta["num_docs"] != len(self.docs):
            raise ValueError(f"index {self.index_dir} has {meta['num_docs']} documents, corpus has {len(self.docs)}; "
                             "delete the index directory")
        self._index = self._bm25s.BM25.load(self.index_dir, show_progress=False, verbosity=0)
        self._tok = self._tokenizer()
        self._tok.load_vocab(self.index_dir)

    def search(self, queries: Sequence[str], topk: int) -> list[list[Hit]]:
        """Top-k documents per query, best first.

        Args:
          queries: query strings (any text; a query with no known word scores every document 0).
          topk: documents per query (clamped to the corpus size).

        Raises:
          ValueError: topk < 1 or a query that is not a string.
        """
        if not isinstance(topk, int) or topk < 1:
            raise ValueError(f"topk must be a positive int, got {topk!r}")
        queries = list(queries)
        for q in queries:
            if not isinstance(q, str):
                raise ValueError(f"queries must be strings, got {type(q).__name__}")
        if not queries:
            return []
        k = min(topk, len(self.docs))
        with self._lock:  # the tokenizer's stem cache is not thread-safe
            ids = self._tok.tokenize(queries, update_vocab=False, return_as="ids", show_progress=False)
            indices, scores = self._index.retrieve(ids, k=k, show_progress=False, n_threads=0,
                                                   backend_selection="numpy", return_as="tuple")
            self._queries += len(queries)
            self._batches += 1
        return [[Hit(self.docs[int(i)], float(s)) for i, s in zip(row_i, row_s)]
                for row_i, row_s in zip(indices, scores)]

    async def asearch(self, queries: Sequence[str], topk: int) -> list[list[Hit]]:
        """`search` in a worker thread."""
        return await asyncio.to_thread(self.search, list(queries), topk)

    def stats(self) -> dict[str, float]:
        return {"queries": float(self._queries), "batches": float(self._batches)}

    def close(self) -> None:
        pass


_TOOL_OPTIONS = ("corpus", "topk", "cache_dir", "k1", "b", "method", "stopwords", "stemmer")


def tool_from_options(spec: ToolSpec, options: dict[str, Any], tokens: TokenCounter):
    """The "bm25" backend: `{"corpus": path, "topk": 3, "cache_dir": ..., BM25Settings fields, format keys}`."""
    from coa_jax.env.search_tool import SearchTool

    fmt = format_from_options(spec, options, tokens)
    check_options("bm25 tool", options, _TOOL_OPTIONS)
    if "corpus" not in options:
        raise ValueError("bm25 tool: option 'corpus' (path to corpus.jsonl) is required")
    fields = {f.name for f in dataclasses.fields(BM25Settings)}
    settings = BM25Settings(**{k: v for k, v in options.items() if k in fields})
    retriever = BM25Retriever(options["corpus"], settings=settings, cache_dir=options.get("cache_dir"))
    return SearchTool(retriever, topk=options.get("topk", 3), fmt=fmt, spec=spec)
