"""Tokenizers through `transformers`: from a checkpoint directory or a GGUF file, with chat templates."""

from __future__ import annotations

import pathlib

import transformers


def load_tokenizer(path: str | pathlib.Path) -> transformers.PreTrainedTokenizerBase:
    """The tokenizer of a Hugging Face directory, a tokenizer directory, or a GGUF file (offline)."""
    p = pathlib.Path(path)
    if p.is_file() and p.suffix == ".gguf":
        return transformers.AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name, local_files_only=True)
    if not p.is_dir():
        raise FileNotFoundError(f"no tokenizer at {path}")
    return transformers.AutoTokenizer.from_pretrained(str(p), local_files_only=True)


def encode_prompt(tokenizer, text: str, *, chat: bool, system: str | None = None) -> list[int]:
    """Token ids of a prompt; with chat=True the checkpoint's chat template and generation prompt."""
    if not chat:
        return list(tokenizer.encode(text, add_special_tokens=False))
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "keys"):  # newer transformers return a BatchEncoding
        ids = ids["input_ids"]
    return list(ids)


def eos_ids(tokenizer) -> list[int]:
    """Token ids that end generation (eos, and the chat end-of-turn token when distinct)."""
    ids = []
    for tok in (tokenizer.eos_token, "<|im_end|>", "<|eot_id|>", "<|endoftext|>"):
        if tok is None:
            continue
        tid = tokenizer.convert_tokens_to_ids(tok)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid not in ids:
            ids.append(tid)
    return ids
