"""The embedded model's tokenizer: a small byte-level BPE trained on the world's text.

- Byte-level (every byte is in the base alphabet), so any text encodes and decodes exactly.
- Pre-tokenised like Qwen2 (digits one by one, words with their leading space).
- Chat special tokens `<|endoftext|>` (eos and pad), `<|im_start|>`, `<|im_end|>`.
- The action/observation tags are single *non-special* added tokens: they are never split and
  `decode(..., skip_special_tokens=True)` keeps them.
- Saved in the Hugging Face layout (tokenizer.json, tokenizer_config.json with a Qwen-like chat
  template, special_tokens_map.json): `transformers.AutoTokenizer.from_pretrained(dir)` loads it.
Training is deterministic for a given text sequence.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

EOS_TOKEN = "<|endoftext|>"
CHAT_SPECIAL_TOKENS = (EOS_TOKEN, "<|im_start|>", "<|im_end|>")
ACTION_TAGS = (
    "<think>", "</think>",
    "<begin_search>", "</end_search>", "<search_result>", "</search_result>",
    "<begin_calc>", "</end_calc>", "<calc_result>", "</calc_result>",
)  # fmt: skip
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}"
)
# Qwen2's split: contractions, letters with one leading non-letter, single digits, punctuation runs.
_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# format pieces the trajectories use, so common ones get their own merges
FORMAT_SAMPLES = ("\\boxed{", "} ", "result 1: ", "result 2: ", "result 3: ", "The answer is ", "\n\n")


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """Trains the byte-level BPE on `texts` and adds chat tokens and action tags.

    Args:
      texts: training text, in a fixed order (the result depends on it).
      vocab_size: size of the trained vocabulary (specials and byte alphabet included); the
        action tags come on top.
    """
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_SPLIT_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])  # fmt: skip
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(CHAT_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False, single_word=False) for t in ACTION_TAGS])
    return tok


def save_hf_tokenizer(tok: Tokenizer, out_dir: str | os.PathLike, model_max_length: int = 8192) -> None:
    """Writes tokenizer.json, tokenizer_config.json and special_tokens_map.json to `out_dir`."""
    os.makedirs(out_dir, exist_ok=True)
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": model_max_length,
        "bos_token": None,
        "eos_token": EOS_TOKEN,
        "pad_token": EOS_TOKEN,
        "unk_token": None,
        "additional_special_tokens": list(CHAT_SPECIAL_TOKENS[1:]),
        "clean_up_tokenization_spaces": False,
        "padding_side": "right",
        "chat_template": CHAT_TEMPLATE,
    }
    special = {
        "eos_token": EOS_TOKEN,
        "pad_token": EOS_TOKEN,
        "additional_special_tokens": list(CHAT_SPECIAL_TOKENS[1:]),
    }
    for name, obj in (("tokenizer_config.json", config), ("special_tokens_map.json", special)):
        with open(os.path.join(out_dir, name), "w", encoding="utf-8", newline="\n") as f:
            json.dump(obj, f, ensure_ascii=False, indent=2)
            f.write("\n")
