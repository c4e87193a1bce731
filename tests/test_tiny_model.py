"""The offline tiny model factory: tokenizer, model, HF directory round trip, chat template for TRL."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from memrl.train.tiny_model import (
    EOS_TOKEN,
    PAD_TOKEN,
    build_tiny_model,
    build_tiny_model_dir,
    default_corpus,
    train_tokenizer,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")

SAMPLES = [
    '{"ops":[{"op":"ADD","id":"0","text":"Ana lives in Paris"}]}',
    "**Answer:** 7:20 pm on 16 June, 2023",
    "Caroline: I adopted a dog named Max 12 days ago! ünïcödé 🙂",
    '{"selected_memory":["<session_3>"],"answer":"B"}',
]


def test_default_corpus_is_deterministic_and_covers_the_formats():
    a, b = default_corpus(), default_corpus()
    assert a == b and len(a) > 3000
    text = "\n".join(a)
    for needle in ['"ops"', '"op": "UPDATE"', "**Answer:**", '"memory"', '"old_memory"', '"selected_memory"',
                   '"label"', " pm on ", "[3] ", "You keep a memory of facts"]:
        assert needle in text, needle
    assert default_corpus(seed=1) != a


def test_tokenizer_specials_and_byte_fallback():
    tok = train_tokenizer(default_corpus(num_lines=500), vocab_size=800)
    assert tok.eos_token == EOS_TOKEN and tok.pad_token == PAD_TOKEN and tok.padding_side == "left"
    assert len(tok) <= 800
    for s in SAMPLES:  # byte-level BPE: everything round-trips, nothing is <unk>
        assert tok.decode(tok(s)["input_ids"]) == s
    ids = tok("<|im_start|>user\nhi<|im_end|>")["input_ids"]
    assert ids[0] == tok.convert_tokens_to_ids("<|im_start|>") and ids[-1] == tok.eos_token_id


def test_chat_template_marks_assistant_turn_including_eos_for_trl():
    from trl.chat_template_utils import has_generation_markers, is_chat_template_stop_token_trained

    tok = train_tokenizer(default_corpus(num_lines=500), vocab_size=800)
    assert has_generation_markers(tok.chat_template)
    assert is_chat_template_stop_token_trained(tok)
    msgs = [{"role": "user", "content": "Where does Ana live?"}, {"role": "assistant", "content": "**Answer:** Paris"}]
    enc = tok.apply_chat_template(msgs, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = enc["input_ids"], enc["assistant_masks"]
    trained = [i for i, m in zip(ids, mask) if m]
    assert tok.decode(trained) == "**Answer:** Paris<|im_end|>"
    prompt = tok.apply_chat_template(msgs[:1], tokenize=False, add_generation_prompt=True)
    assert prompt == "<|im_start|>user\nWhere does Ana live?<|im_end|>\n<|im_start|>assistant\n"


def test_model_is_deterministic_per_seed():
    tok = train_tokenizer(default_corpus(num_lines=300), vocab_size=600)
    a, b, c = build_tiny_model(tok, seed=0), build_tiny_model(tok, seed=0), build_tiny_model(tok, seed=1)
    for (n, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb), n
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))
    assert a.config.model_type == "llama" and a.config.vocab_size == len(tok)


def test_model_dir_round_trip_offline(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    files = {p.name for p in tiny_model_dir.iterdir()}
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json",
            "chat_template.jinja"} <= files
    assert not any(f.endswith((".bin", ".pt", ".pth")) for f in files)
    assert not any(p.name.startswith(".") for p in tiny_model_dir.parent.iterdir())  # no temp dir left

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert "qwen" not in type(tok).__name__.lower()
    raw = json.loads((tiny_model_dir / "tokenizer.json").read_text())
    from tokenizers import Tokenizer

    raw_tok = Tokenizer.from_str(json.dumps(raw))
    for s in SAMPLES:
        assert tok(s, add_special_tokens=False)["input_ids"] == raw_tok.encode(s, add_special_tokens=False).ids
    saved = load_file(tiny_model_dir / "model.safetensors")
    state = model.state_dict()
    for name, tensor in saved.items():
        assert torch.equal(state[name], tensor), name
    gen = json.loads((tiny_model_dir / "generation_config.json").read_text())
    assert gen["eos_token_id"] == tok.eos_token_id and gen["pad_token_id"] == tok.pad_token_id
    assert model.config.tie_word_embeddings and model.config.model_type == "llama"
    meta = json.loads((tiny_model_dir / "memrl_tiny_model.json").read_text())
    assert meta["num_parameters"] == sum(p.numel() for p in model.parameters())


def test_build_dir_with_custom_corpus_and_overwrite(tmp_path):
    corpus = [f"Ben said {i} things about chess and pizza." for i in range(400)]
    out = build_tiny_model_dir(tmp_path / "m", corpus, vocab_size=400, hidden_size=32, layers=1, heads=2, kv_heads=1)
    first = (out / "model.safetensors").read_bytes()
    build_tiny_model_dir(tmp_path / "m", corpus, vocab_size=400, hidden_size=32, layers=1, heads=2, kv_heads=1,
                         seed=5)
    assert (out / "model.safetensors").read_bytes() != first  # replaced, not merged
    assert AutoModelForCausalLM.from_pretrained(out).config.hidden_size == 32
    with pytest.raises(ValueError, match="corpus is empty"):
        build_tiny_model_dir(tmp_path / "empty", [])
