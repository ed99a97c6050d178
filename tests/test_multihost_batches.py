"""Each process builds only its rows of a global batch: the rows equal the single-process batch's,
and the global-batch helpers map rows to devices by the batch's sharding."""

import jax
import numpy as np
import pytest

from coa_jax.config.schema import MeshConfig
from coa_jax.data.provenance import Provenance
from coa_jax.data.streams import PairStream, SFTStream
from coa_jax.data.tokenize_pairs import TokenizedPair
from coa_jax.data.tokenize_sft import TokenizedExample
from coa_jax.runtime.global_batch import micro_rows, process_rows, to_global
from coa_jax.sharding.mesh import make_mesh
from coa_jax.sharding.rules import TRAINING_RULES, Sharder


def _example(rng, n):
    labels = np.full(n, int(Provenance.POLICY), np.int8)
    labels[0] = int(Provenance.PROMPT)
    return TokenizedExample(rng.integers(1, 100, n).astype(np.int32), labels)


def _examples(count=40, seed=0):
    rng = np.random.default_rng(seed)
    return [_example(rng, int(n)) for n in rng.integers(5, 60, count)]


def _pairs(count=24, seed=1):
    rng = np.random.default_rng(seed)
    return [TokenizedPair(rng.integers(1, 100, int(c)).astype(np.int32), _example(rng, int(a)), _example(rng, int(b)))
            for c, a, b in rng.integers(3, 40, (count, 3))]


@pytest.mark.parametrize("local", [[0, 1, 2, 3], [4, 5, 6, 7], [1, 6], [7, 0]])
def test_sft_stream_builds_exactly_its_rows_of_the_global_batch(local):
    whole = SFTStream(_examples(), rows=8, length=64, seed=3)
    mine = SFTStream(_examples(), rows=8, length=64, seed=3, local_rows=local)
    for _ in range(5):  # past an epoch boundary too
        a, b = next(whole), next(mine)
        for field in ("tokens", "positions", "segment_ids", "labels"):
            np.testing.assert_array_equal(getattr(a, field)[local], getattr(b, field), err_msg=field)
    assert mine.get_state() == whole.get_state()  # one checkpoint entry serves every process


@pytest.mark.parametrize("mode", ["bucket", "pack"])
def test_pair_stream_builds_exactly_its_rows_with_the_global_width(mode):
    local = [2, 3]
    whole = PairStream(_pairs(), rows=4, max_len=128, mode=mode, pairs_per_row=3, seed=0)
    mine = PairStream(_pairs(), rows=4, max_len=128, mode=mode, pairs_per_row=3, seed=0, local_rows=local)
    for _ in range(8):
        a, b = next(whole), next(mine)
        assert a.chosen.tokens.shape[1] == b.chosen.tokens.shape[1]  # the bucket is the global batch's
        np.testing.assert_array_equal(a.chosen.tokens[local], b.chosen.tokens)
        np.testing.assert_array_equal(a.rejected.labels[local], b.rejected.labels)
        np.testing.assert_array_equal(a.pair_valid[local], b.pair_valid)


def test_local_rows_are_checked():
    with pytest.raises(ValueError, match="local_rows"):
        SFTStream(_examples(), rows=4, length=64, local_rows=[4])


def test_rows_follow_the_batch_sharding_and_a_single_process_keeps_numpy():
    sharder = Sharder(make_mesh(MeshConfig(data=4, fsdp=2)), TRAINING_RULES)
    sharding = sharder.sharding((None, "batch", "length"), (2, 8, 16))
    assert process_rows(sharding, (2, 8, 16)) == list(range(8))  # one process holds every row
    assert micro_rows(sharding, 2, 16, 16) == list(range(16))
    local = {"tokens": np.arange(2 * 8 * 16).reshape(2, 8, 16)}
    assert to_global(local, {"tokens": sharding}, global_rows=8)["tokens"] is local["tokens"]
    assert jax.process_count() == 1
