"""`python -m coa_jax generate --json` end to end on a tiny checkpoint directory with its own tokenizer."""

import json

import tokenizers
import torch
import transformers

from coa_jax.cli import main
from hf_fixtures import make_tiny_hf

TEXT = ("<think> The river Ossa flows north. <begin_search> Ossa river source </end_search> "
        "<search_result> result 1: The Ossa rises in the Velm hills. </search_result> So the answer is Velm. "
        "</think> \\boxed{Velm}") * 4


def _write_tokenizer(directory):
    tok = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token=None))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                             initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([TEXT], trainer)
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")
    fast.save_pretrained(directory)
    return fast


def test_generate_json_matches_transformers_greedy(tmp_path, capsys):
    tokenizer = _write_tokenizer(tmp_path)
    model = make_tiny_hf(tmp_path, "qwen2", vocab_size=len(tokenizer), num_attention_heads=4, num_key_value_heads=2)
    assert main(["generate", "--checkpoint", str(tmp_path), "--prompt", "The river Ossa", "--max-new-tokens", "10",
                 "--greedy", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(out) >= {"prompt_ids", "output_ids", "text"}
    assert out["prompt_ids"] == tokenizer.encode("The river Ossa", add_special_tokens=False)
    with torch.no_grad():
        ref = model.generate(torch.tensor([out["prompt_ids"]]), max_new_tokens=10, do_sample=False,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id,
                             attention_mask=torch.ones(1, len(out["prompt_ids"]), dtype=torch.long))
    ref_ids = ref[0, len(out["prompt_ids"]):].tolist()
    assert out["output_ids"] == ref_ids
    assert out["text"] == tokenizer.decode(ref_ids)


def test_generate_sampling_is_seeded(tmp_path, capsys):
    tokenizer = _write_tokenizer(tmp_path)
    make_tiny_hf(tmp_path, "llama", vocab_size=len(tokenizer), num_attention_heads=4, num_key_value_heads=1)
    runs = []
    for seed in ("1", "1", "2"):
        main(["generate", "--checkpoint", str(tmp_path), "--prompt", "Velm", "--max-new-tokens", "12",
              "--temperature", "1.5", "--top-p", "0.95", "--seed", seed, "--json"])
        runs.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["output_ids"])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_generate_reports_bad_input_without_a_traceback(tmp_path, capsys):
    assert main(["generate", "--checkpoint", str(tmp_path), "--prompt", "x", "--top-p", "1.5",
                 "--temperature", "1"]) == 2
    assert "sampling.top_p" in capsys.readouterr().err
    assert main(["generate", "--checkpoint", str(tmp_path / "missing"), "--prompt", "x"]) == 2
    assert "missing" in capsys.readouterr().err
