"""In-process BM25 over corpus.jsonl, its on-disk index cache, and the search tool on it."""

import json
import os
import subprocess
import sys

import pytest

from coa_jax.env.bm25 import BM25Retriever, BM25Settings
from coa_jax.env.corpus import load_corpus
from coa_jax.env.search_tool import SearchTool

ROWS = [
    {"id": "0", "title": "Paris", "contents": '"Paris"\nParis is the capital and largest city of France.'},
    {"id": "1", "title": "Berlin", "contents": '"Berlin"\nBerlin is the capital of Germany.'},
    {"id": "2", "title": "Tiber", "contents": '"Tiber"\nThe Tiber is the river that flows through Rome.'},
    {"id": 3, "title": "Rome", "text": "Rome is the capital of Italy."},
]


def write_corpus(path, rows=ROWS):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_corpus_rows_follow_flashrag_convention(tmp_path):
    docs, digest = load_corpus(write_corpus(tmp_path / "corpus.jsonl"))
    assert docs[3].id == "3" and docs[3].contents == '"Rome"\nRome is the capital of Italy.'
    assert docs[0].title == "Paris" and len(digest) == 64
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(ROWS[0]) + "\n{oops\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not valid JSON"):
        load_corpus(bad)
    bad.write_text(json.dumps({"id": 1, "title": "x"}) + "\n")
    with pytest.raises(ValueError, match=r":1: needs a string 'contents'"):
        load_corpus(bad)
    bad.write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        load_corpus(bad)


def test_search_ranks_and_batches(tmp_path):
    r = BM25Retriever(write_corpus(tmp_path / "corpus.jsonl"))
    france, river = r.search(["capital city of France", "which river flows through Rome"], 2)
    assert france[0].doc.id == "0" and river[0].doc.id == "2"
    assert france[0].score > france[1].score
    assert r.search(["which river flows through Rome"], 2) == [river]  # batched == single
    assert len(r.search(["capital"], 50)[0]) == 4  # topk clamped to the corpus
    assert [len(h) for h in r.search(["", "zzqx unknown words", "the of and"], 3)] == [3, 3, 3]
    with pytest.raises(ValueError, match="topk"):
        r.search(["x"], 0)


def test_environment_layer_does_not_start_jax(tmp_path):
    """bm25s would import JAX (and initialise the accelerator); the retrieval side must not."""
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    code = ("import sys; from coa_jax.env.bm25 import BM25Retriever; import coa_jax.env.server, coa_jax.env.client, "
            "coa_jax.env.rewards; BM25Retriever(sys.argv[1]).search(['capital'], 2); print('jax' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(corpus)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_index_is_cached_by_corpus_and_settings(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    first = BM25Retriever(corpus)
    assert not first.loaded_from_cache and os.path.dirname(first.index_dir) == str(tmp_path / ".bm25_index")
    second = BM25Retriever(corpus)
    assert second.loaded_from_cache and second.index_dir == first.index_dir
    assert second.search(["capital of Germany"], 3) == first.search(["capital of Germany"], 3)
    other = BM25Retriever(corpus, settings=BM25Settings(k1=1.2))
    assert not other.loaded_from_cache and other.index_dir != first.index_dir
    write_corpus(corpus, ROWS[:3])
    changed = BM25Retriever(corpus)
    assert not changed.loaded_from_cache and changed.num_docs == 3
    elsewhere = BM25Retriever(corpus, cache_dir=tmp_path / "cache")
    assert elsewhere.index_dir.startswith(str(tmp_path / "cache"))


def test_missing_stemmer_package_is_a_clear_error(tmp_path):
    try:
        import Stemmer  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="PyStemmer"):
            BM25Retriever(write_corpus(tmp_path / "corpus.jsonl"), settings=BM25Settings(stemmer="english"))
    else:
        pytest.skip("PyStemmer is installed")


def test_search_tool_renders_reference_observation(tmp_path):
    tool = SearchTool(BM25Retriever(write_corpus(tmp_path / "corpus.jsonl")), topk=2)
    ok, empty = tool.call(["capital of Germany", "   "])
    assert ok.ok
    assert ok.text.startswith('\n\n<search_result> result 1: "Berlin"\nBerlin is the capital of Germany.\nresult 2: ')
    assert ok.text.endswith(" </search_result>\n\n")
    assert not empty.ok and empty.error == "empty query"
    assert empty.text == "\n\n<search_result> Retrieval failed. </search_result>\n\n"
    single = SearchTool(tool.backend, topk=1).call(["capital of Germany"])[0]
    assert single.text == '\n\n<search_result> "Berlin"\nBerlin is the capital of Germany. </search_result>\n\n'
