"""Question sets as TFDS ArrayRecord datasets, read as random-access sources, iterated
deterministically and resumably.

    from coa_jax.data.tfds import ResumableIterator, world_questions
    train = world_questions("runs/world", style="compact").splits["train"]    # QASource
    it = ResumableIterator(train, seed=0)                                    # state: position
    batch = it.next_batch(8)                                                 # list[QARecord]
    state = it.get_state()                                                   # -> checkpoint

TensorFlow is not needed: `tensorflow_datasets` writes and reads ArrayRecord files on its own
(`GeneratorBasedBuilder(file_format="array_record")`, `as_data_source`). `builders` holds the
TFDS builders, `benchmarks` the readers of the public benchmarks' own file formats.
"""

from coa_jax.data.tfds.benchmarks import BENCHMARKS, find_files, read_benchmark, split_of
from coa_jax.data.tfds.iterate import ResumableIterator
from coa_jax.data.tfds.records import QARecord
from coa_jax.data.tfds.source import QADataset, QASource, benchmark_qa, verl_qa, world_questions

__all__ = [
    "BENCHMARKS",
    "QADataset",
    "QARecord",
    "QASource",
    "ResumableIterator",
    "benchmark_qa",
    "find_files",
    "read_benchmark",
    "split_of",
    "verl_qa",
    "world_questions",
]
