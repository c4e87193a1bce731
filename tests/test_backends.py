"""TransformersBackend on the tiny model: determinism, logprobs, batching/padding, stop, LoRA, safety."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from memrl.policies.backends import (
    Generation,
    GenerationBackend,
    SamplingParams,
    TransformersBackend,
    UnsafeCheckpointError,
    load_policy_model,
    make_backend,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")

# Prompts of different lengths, chat and plain, so a batch really needs left padding.
PROMPTS = [
    [{"role": "user", "content": "Ana moved to Paris."}],
    [{"role": "system", "content": "Output JSON ops."},
     {"role": "user", "content": "[0] Ben likes chess (2023-05-08)\n[1] Ben has a cat named Milo\nNew: Ben: I sold my cat."}],
    [{"role": "user", "content": "When did Caroline adopt a dog?"}],
    "Plain text prompt about Melanie's pottery class and her kids, who love painting on weekends",
    [{"role": "user", "content": "Hi"}],
    [{"role": "user", "content": "Question: Where does Omar live? **Answer:**"}],
    [{"role": "user", "content": "Tokyo " * 20}],
]


def recomputed_logprobs(model, g: Generation, temperature: float) -> list[float]:
    """log_softmax(logits / T) of the generated tokens from one plain forward pass (no padding, no cache)."""
    ids = torch.tensor([g.prompt_token_ids + g.token_ids])
    with torch.no_grad():
        logits = model(ids).logits[0].float()
    P = len(g.prompt_token_ids)
    lp = torch.log_softmax(logits[P - 1 : P - 1 + len(g.token_ids)] / temperature, dim=-1)
    return lp.gather(1, torch.tensor(g.token_ids)[:, None]).squeeze(1).tolist()


def test_protocol_and_shapes(tiny_backend):
    assert isinstance(tiny_backend, GenerationBackend)
    out = tiny_backend.generate(PROMPTS[:3], SamplingParams(n=2, max_tokens=5))
    assert len(out) == 3 and all(len(g) == 2 for g in out)
    g = out[0][0]
    assert len(g.token_ids) == len(g.logprobs) == 5 and g.finish_reason == "length"
    assert g.prompt_token_ids[-5:] == tiny_backend.tokenizer("<|im_start|>assistant\n")["input_ids"]


def test_greedy_is_deterministic_and_batching_matches_one_by_one(tiny_backend):
    params = SamplingParams(max_tokens=16)
    batched = tiny_backend.generate(PROMPTS, params)  # batch_size 4 -> two padded batches
    again = tiny_backend.generate(PROMPTS, params)
    singles = [tiny_backend.generate([p], params)[0] for p in PROMPTS]
    texts = [b[0].text for b in batched]
    assert len(set(texts)) >= 4, texts  # the outputs depend on the prompt, so the comparison means something
    for b, a, s in zip(batched, again, singles):
        assert b[0].token_ids == a[0].token_ids == s[0].token_ids
        assert b[0].text == s[0].text
        assert b[0].prompt_token_ids == s[0].prompt_token_ids
        assert b[0].logprobs == pytest.approx(s[0].logprobs, abs=1e-4)


def test_long_prompts_get_a_batch_of_their_own_on_cpu(tiny_backend, monkeypatch):
    """On a CPU a prompt at least CPU_SOLO_PROMPT_TOKENS long is not batched with another prompt (no padding mask: SDPA's
    causal kernel); its own samples stay together, short prompts still share batches, and the answers are the same."""
    from memrl.policies import backends

    params = SamplingParams(max_tokens=8)
    lengths = [len(backends.render_prompt(tiny_backend.tokenizer, p)) for p in PROMPTS]
    threshold = sorted(lengths)[-3]  # the three longest prompts are "long"
    assert len(set(lengths)) == len(lengths)
    before = tiny_backend.generate(PROMPTS, params)
    sizes = []
    inner = tiny_backend._generate_batch
    monkeypatch.setattr(tiny_backend, "_generate_batch", lambda ids, p: (sizes.append(len(ids)), inner(ids, p))[1])
    monkeypatch.setattr(backends, "CPU_SOLO_PROMPT_TOKENS", threshold)
    after = tiny_backend.generate(PROMPTS, params)
    assert sizes == [4, 1, 1, 1]  # the 4 short prompts in one batch (batch_size 4), then each long one alone
    assert [g[0].token_ids for g in after] == [g[0].token_ids for g in before]
    sizes.clear()
    longest = PROMPTS[lengths.index(max(lengths))]
    tiny_backend.generate([longest], SamplingParams(max_tokens=4, n=3))  # one long prompt's samples: one batch
    assert sizes == [3]


@pytest.mark.parametrize("temperature", [0.0, 0.7, 1.3])
def test_logprobs_match_a_recomputed_forward_pass(tiny_backend, temperature):
    params = SamplingParams(n=2, temperature=temperature, max_tokens=12, seed=0)
    T = params.logprob_temperature
    for gens in tiny_backend.generate(PROMPTS[:4], params):
        for g in gens:
            assert g.logprobs == pytest.approx(recomputed_logprobs(tiny_backend.model, g, T), abs=1e-4)
            assert all(lp <= 0 for lp in g.logprobs)


def test_greedy_picks_the_argmax(tiny_backend):
    g = tiny_backend.generate(PROMPTS[:1], SamplingParams(max_tokens=6))[0][0]
    ids = torch.tensor([g.prompt_token_ids + g.token_ids])
    with torch.no_grad():
        logits = tiny_backend.model(ids).logits[0]
    P = len(g.prompt_token_ids)
    assert logits[P - 1 : P - 1 + 6].argmax(-1).tolist() == g.token_ids


def test_samples_are_independent_and_seeds_reproduce(tiny_backend):
    params = SamplingParams(n=6, temperature=1.0, max_tokens=10, seed=7)
    out = tiny_backend.generate(PROMPTS[:2], params)
    for gens in out:
        assert len({tuple(g.token_ids) for g in gens}) == 6
    assert [[g.token_ids for g in gs] for gs in tiny_backend.generate(PROMPTS[:2], params)] == \
        [[g.token_ids for g in gs] for gs in out]
    other = tiny_backend.generate(PROMPTS[:2], SamplingParams(n=6, temperature=1.0, max_tokens=10, seed=8))
    assert [g.token_ids for g in other[0]] != [g.token_ids for g in out[0]]
    # Seeded calls leave the global RNG alone.
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    tiny_backend.generate(PROMPTS[:1], params)
    assert torch.equal(torch.rand(1), expected)


def test_stop_strings_cut_text_and_tokens(tiny_backend):
    params = SamplingParams(max_tokens=20)
    full = tiny_backend.generate(PROMPTS, params)
    k = next(i for i, g in enumerate(full) if len(g[0].text) >= 8)
    ref = full[k][0]
    stop = ref.text[4:7]
    start = ref.text.index(stop)
    cut = tiny_backend.generate(PROMPTS, SamplingParams(max_tokens=20, stop=[stop, "never-appears"]))[k][0]
    assert cut.text == ref.text[:start] and cut.finish_reason == "stop"
    n = len(cut.token_ids)
    assert cut.token_ids == ref.token_ids[:n] and cut.logprobs == pytest.approx(ref.logprobs[:n], abs=1e-4)
    assert stop in tiny_backend.tokenizer.decode(cut.token_ids)  # the tokens that completed the stop are kept
    assert stop not in tiny_backend.tokenizer.decode(cut.token_ids[:-1])


def test_eos_ends_a_row_inside_a_padded_batch(tiny_model_dir):
    """Make the 3rd greedy token of one prompt an EOS id: that row stops there, the others run on."""
    backend = TransformersBackend(tiny_model_dir, device="cpu", batch_size=8)
    ref = backend.generate(PROMPTS, SamplingParams(max_tokens=8))
    eos_tok = ref[0][0].token_ids[2]
    backend.model.generation_config.eos_token_id = [backend.tokenizer.eos_token_id, eos_tok]
    out = backend.generate(PROMPTS, SamplingParams(max_tokens=8))
    g = out[0][0]
    assert g.finish_reason == "stop" and g.token_ids == ref[0][0].token_ids[:3]
    for r, o in zip(ref, out):  # every row: the reference up to (and including) its first new-EOS token
        ids = r[0].token_ids
        cut = ids.index(eos_tok) + 1 if eos_tok in ids else len(ids)
        assert o[0].token_ids == ids[:cut]


def test_checkpoint_sampling_defaults_do_not_leak(tiny_model_dir, tiny_backend):
    """Real checkpoints ship generation_config defaults (Qwen: top_k=20, repetition_penalty=1.05, ...).
    Our SamplingParams must fully define the distribution, or logprobs would not describe the samples."""
    backend = TransformersBackend(tiny_model_dir, device="cpu", batch_size=8)
    gc = backend.model.generation_config
    gc.do_sample, gc.top_k, gc.temperature, gc.repetition_penalty, gc.no_repeat_ngram_size = True, 1, 0.05, 5.0, 2
    params = SamplingParams(max_tokens=10)
    assert [g[0].token_ids for g in backend.generate(PROMPTS, params)] == \
        [g[0].token_ids for g in tiny_backend.generate(PROMPTS, params)]
    sampled = backend.generate(PROMPTS[:1], SamplingParams(n=6, temperature=1.0, max_tokens=6, seed=0))[0]
    assert len({tuple(g.token_ids) for g in sampled}) > 1  # top_k=1 did not leak in


def test_prompt_validation(tiny_backend):
    with pytest.raises(TypeError, match=r"prompts\[1\]"):
        tiny_backend.generate([PROMPTS[0], [{"content": "no role"}]], SamplingParams())
    with pytest.raises(ValueError, match="temperature"):
        SamplingParams(temperature=-1)
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0)


def test_live_model_sharing_and_train_mode(tiny_model_dir, tiny_backend):
    model, tok = load_policy_model(tiny_model_dir, device="cpu")
    backend = TransformersBackend(model, tok)
    assert backend.model is model
    model.train()
    a = backend.generate(PROMPTS[:3], SamplingParams(max_tokens=8))
    assert model.training  # restored after generation (dropout is off while generating)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # a trainer's in-place update is seen without any sync
    b = backend.generate(PROMPTS[:3], SamplingParams(max_tokens=8))
    assert [g[0].token_ids for g in a] != [g[0].token_ids for g in b]
    fresh = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    backend.update_weights(fresh)
    assert backend.model is fresh
    c = backend.generate(PROMPTS[:3], SamplingParams(max_tokens=8))
    assert [g[0].token_ids for g in c] == [g[0].token_ids for g in tiny_backend.generate(PROMPTS[:3], SamplingParams(max_tokens=8))]


# ---- LoRA ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lora_dir(tiny_model_dir, tmp_path_factory):
    from peft import LoraConfig, get_peft_model

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    # init_lora_weights=False: random A and B, so the adapter really changes the outputs.
    cfg = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
    peft_model = get_peft_model(base, cfg)
    out = tmp_path_factory.mktemp("lora") / "adapter"
    peft_model.save_pretrained(out)
    assert (out / "adapter_model.safetensors").is_file()
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_model_dir)
    return out, peft_model


def test_lora_adapter_loads_three_ways_and_generates(tiny_model_dir, tiny_backend, lora_dir):
    adir, peft_model = lora_dir
    params = SamplingParams(max_tokens=10)
    expected = TransformersBackend(peft_model, tiny_backend.tokenizer).generate(PROMPTS[:4], params)
    via_arg = TransformersBackend(tiny_model_dir, device="cpu", adapter_path=adir).generate(PROMPTS[:4], params)
    via_dir = TransformersBackend(adir, device="cpu").generate(PROMPTS[:4], params)
    model, tok = load_policy_model(adir, device="cpu")
    via_loader = TransformersBackend(model, tok).generate(PROMPTS[:4], params)
    ids = lambda out: [g[0].token_ids for g in out]
    assert ids(via_arg) == ids(via_dir) == ids(via_loader) == ids(expected)
    assert ids(via_dir) != ids(tiny_backend.generate(PROMPTS[:4], params))  # the adapter is really applied
    from peft import PeftModel

    assert isinstance(model, PeftModel)


def test_pickle_weights_are_refused(tiny_model_dir, tmp_path, lora_dir):
    bad = tmp_path / "pickled"
    bad.mkdir()
    (bad / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    torch.save(model.state_dict(), bad / "pytorch_model.bin")
    with pytest.raises(UnsafeCheckpointError, match="pytorch_model.bin"):
        load_policy_model(bad)
    with pytest.raises(UnsafeCheckpointError, match="safetensors only"):
        TransformersBackend(bad)

    adir, _ = lora_dir
    bad_adapter = tmp_path / "pickled_adapter"
    bad_adapter.mkdir()
    (bad_adapter / "adapter_config.json").write_text((adir / "adapter_config.json").read_text())
    torch.save({}, bad_adapter / "adapter_model.bin")
    with pytest.raises(UnsafeCheckpointError, match="adapter_model.bin"):
        load_policy_model(bad_adapter)

    (tmp_path / "no_base").mkdir()
    (tmp_path / "no_base" / "adapter_config.json").write_text("{}")
    with pytest.raises(ValueError, match="base_model_name_or_path"):
        load_policy_model(tmp_path / "no_base")


# ---- factory and benchmark ---------------------------------------------------------------------------
def test_make_backend_specs(tiny_model_dir):
    assert isinstance(make_backend(f"transformers:{tiny_model_dir}", device="cpu"), TransformersBackend)
    assert isinstance(make_backend(str(tiny_model_dir), device="cpu"), TransformersBackend)
    b = make_backend({"backend": "transformers", "path": str(tiny_model_dir), "batch_size": 3}, device="cpu")
    assert b.batch_size == 3
    with pytest.raises(ValueError, match="unknown backend"):
        make_backend({"backend": "tgi", "path": "x"})
    with pytest.raises(ValueError, match="'path'"):
        make_backend({"backend": "transformers"})


def test_vllm_backend_missing_gives_install_hint(tiny_model_dir):
    try:  # vllm is not part of the CPU install; where it is installed this check does not apply
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"\.\[vllm\]"):
            make_backend(f"vllm:{tiny_model_dir}")
    else:
        pytest.skip("vllm is installed here")
