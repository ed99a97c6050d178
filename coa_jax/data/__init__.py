"""Data: readers/writers for the reference formats and the embedded synthetic world.

- `coa_jax.data.formats`: messages JSONL, CoT+A contrastive JSON, verl parquet prompt files.
- `coa_jax.data.world`: the generator of the embedded world (corpus, pretraining text,
  questions, tokenizer) and the reader of a built world directory.
"""
