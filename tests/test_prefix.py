"""One prefill per prompt group (memrl.policies.prefix, memrl.train.grpo, memrl.train.ppo): the shared-prefix path
computes the same per-token log-probs, gradients and greedy generations as the plain full forward.

Float32 on the tiny model (fast) and on SmolLM2 with LoRA (slow); bfloat16 on SmolLM2 against a float32 reference,
with the gap bounded (PPO's ratio at step 0 must stay 1 +- 0.01)."""

from __future__ import annotations

import pytest
import torch

from memrl.policies.prefix import (
    common_prefix_len,
    generate_shared_prefix,
    prefix_hidden_logprobs,
    split_model,
)


def _full_logprobs(model, seqs, starts):
    """The reference: every row in full, right-padded, logits of every position, log-softmax in float32."""
    width = max(map(len, seqs))
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    logits = model(input_ids=ids, attention_mask=mask).logits.float()
    out = []
    for i, (s, a) in enumerate(zip(seqs, starts)):
        lp = torch.log_softmax(logits[i, a - 1: len(s) - 1], -1)
        out.append(lp.gather(-1, torch.tensor(s[a:]).unsqueeze(-1)).squeeze(-1))
    return out


def _grads(model, fn):
    model.zero_grad(set_to_none=True)
    lps = fn()
    sum(x.sum() for x in lps).backward()
    g = torch.cat([p.grad.flatten().float() for p in model.parameters() if p.grad is not None])
    return [x.detach() for x in lps], g


def _rows(vocab, prompt_len, n, seed, shared=True):
    gen = torch.Generator().manual_seed(seed)
    prompt = torch.randint(3, vocab, (prompt_len,), generator=gen).tolist()
    seqs, starts = [], []
    for i in range(n):
        p = prompt if shared else prompt[: prompt_len - 8] + torch.randint(3, vocab, (8 + i,), generator=gen).tolist()
        comp = torch.randint(3, vocab, (int(torch.randint(1, 12, (1,), generator=gen)),), generator=gen).tolist()
        seqs.append(p + comp)
        starts.append(len(p))
    return seqs, starts


@pytest.fixture(scope="module")
def tiny_lm(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)


def test_common_prefix_len():
    assert common_prefix_len([[1, 2, 3], [1, 2, 4], [1, 2]]) == 2
    assert common_prefix_len([[5], [6]]) == 0
    assert common_prefix_len([[1, 2, 3]]) == 3


@pytest.mark.parametrize("shared", [True, False], ids=["one-prompt-group", "distinct-prompts"])
def test_tiny_shared_prefix_logprobs_and_grads_equal_full_forward(tiny_lm, torch_one_thread, shared):
    seqs, starts = _rows(tiny_lm.config.vocab_size, 60, 6, seed=1, shared=shared)
    ref, g_ref = _grads(tiny_lm, lambda: _full_logprobs(tiny_lm, seqs, starts))
    got, g_got = _grads(tiny_lm, lambda: prefix_hidden_logprobs(tiny_lm, seqs, starts))
    for r, x in zip(ref, got):
        assert torch.allclose(r, x, atol=1e-4), (r - x).abs().max()
    assert ((g_ref - g_got).norm() / g_ref.norm()).item() < 1e-4



@pytest.mark.parametrize("head", [20, 0], ids=["common-head", "no-common-head"])
def test_tiny_grouped_batch_logprobs_and_grads_equal_full_forward(tiny_lm, torch_one_thread, head):
    """An RL batch: 3 prompts of different lengths, 2-3 completions each, rows interleaved. Each prompt runs once
    (all three in one left-padded pass), every completion in one pass on the expanded cache: per-token log-probs
    and gradients equal the full forward's."""
    gen = torch.Generator().manual_seed(7)
    rand = lambda n: torch.randint(3, tiny_lm.config.vocab_size, (n,), generator=gen).tolist()
    common = rand(head)
    prompts = [common + rand(10 + 9 * i) for i in range(3)]
    seqs, starts = [], []
    for j in [0, 1, 2, 0, 1, 2, 0, 2]:
        seqs.append(prompts[j] + rand(int(torch.randint(1, 9, (1,), generator=gen))))
        starts.append(len(prompts[j]))
    calls = []
    hook = split_model(tiny_lm)[0].register_forward_hook(
        lambda m, a, kw, out: calls.append(tuple(kw["input_ids"].shape)), with_kwargs=True)
    try:
        got, g_got = _grads(tiny_lm, lambda: prefix_hidden_logprobs(tiny_lm, seqs, starts))
    finally:
        hook.remove()
    assert [c[0] for c in calls] == ([1, 3, 8] if head else [3, 8])  # head once, prompts once, tails once
    ref, g_ref = _grads(tiny_lm, lambda: _full_logprobs(tiny_lm, seqs, starts))
    for r, x in zip(ref, got):
        assert torch.allclose(r, x, atol=1e-4), (r - x).abs().max()
    assert ((g_ref - g_got).norm() / g_ref.norm()).item() < 1e-4

def test_entropy_and_hidden_outputs(tiny_lm, torch_one_thread):
    seqs, starts = _rows(tiny_lm.config.vocab_size, 40, 3, seed=2)
    with torch.no_grad():
        lps, ents, hid = prefix_hidden_logprobs(tiny_lm, seqs, starts, with_entropy=True, return_hidden=True)
        logits = tiny_lm(input_ids=torch.tensor([seqs[0]])).logits[0, starts[0] - 1: len(seqs[0]) - 1].float()
    lp = torch.log_softmax(logits, -1)
    assert torch.allclose(ents[0], -(lp.exp() * lp).sum(-1), atol=1e-4)
    assert [h.shape[0] for h in hid] == [len(s) - a for s, a in zip(seqs, starts)]
    with pytest.raises(ValueError, match="outside"):
        prefix_hidden_logprobs(tiny_lm, [[1, 2, 3]], [0])


def test_tiny_shared_prefix_greedy_generation_equals_one_at_a_time(tiny_lm, torch_one_thread):
    seqs, _ = _rows(tiny_lm.config.vocab_size, 50, 3, seed=3, shared=False)
    prompts = [s[:40 + i] for i, s in enumerate(seqs)]
    with torch.no_grad():
        out, width = generate_shared_prefix(tiny_lm, prompts, pad_id=0, do_sample=False, max_new_tokens=8,
                                            pad_token_id=0)
        for i, p in enumerate(prompts):
            one = tiny_lm.generate(input_ids=torch.tensor([p]), attention_mask=torch.ones(1, len(p), dtype=torch.long),
                                   do_sample=False, max_new_tokens=8, pad_token_id=0)
            assert one[0, len(p):].tolist() == out[i, width: width + one.shape[1] - len(p)].tolist()



@pytest.mark.parametrize("shared_head", [True, False])
def test_tiny_repeated_prompts_prefilled_once_decode_together(tiny_lm, torch_one_thread, shared_head):
    """An RL batch (each prompt several times, groups interleaved, prompts of different lengths): each distinct
    prompt is prefilled once, every row decodes in the same generate call, and the greedy output equals each
    prompt generated alone. With no common head (shared_head False) the suffix pass alone carries the sharing."""
    gen = torch.Generator().manual_seed(5)
    rand = lambda n: torch.randint(3, tiny_lm.config.vocab_size, (n,), generator=gen).tolist()
    head = rand(20) if shared_head else []
    distinct = [head + rand(12 + 7 * i) for i in range(3)]
    order = [0, 1, 0, 2, 1, 0, 2]
    calls = []
    hook = split_model(tiny_lm)[0].register_forward_hook(
        lambda m, a, kw, out: calls.append(tuple(kw["input_ids"].shape)), with_kwargs=True)
    try:
        with torch.no_grad():
            out, width = generate_shared_prefix(tiny_lm, [distinct[j] for j in order], pad_id=0, do_sample=False,
                                                max_new_tokens=6, min_new_tokens=6, pad_token_id=0)
    finally:
        hook.remove()
    assert out.shape[0] == len(order)
    # the prompt work: a prefix pass (batch 1) where there is a head, one pass over the 3 distinct suffixes; then
    # 6 decode calls, each over all 7 rows and one position
    assert [c[0] for c in calls[:-6]] == ([1, 3] if shared_head else [3])
    assert calls[-6:] == [(len(order), 1)] * 6
    for row, j in enumerate(order):
        p = distinct[j]
        with torch.no_grad():
            one = tiny_lm.generate(input_ids=torch.tensor([p]), attention_mask=torch.ones(1, len(p), dtype=torch.long),
                                   do_sample=False, max_new_tokens=6, min_new_tokens=6, pad_token_id=0)
        assert one[0, len(p):].tolist() == out[row, width:].tolist(), (row, j)

def _grpo_trainer(model_dir, out, shared_prefix):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig

    from memrl.train.grpo import GRPOTrainer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    tok.pad_token = tok.pad_token or tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    args = GRPOConfig(output_dir=str(out), use_cpu=True, per_device_train_batch_size=4, num_generations=4,
                      max_completion_length=6, max_steps=1, report_to=[], logging_steps=1, save_strategy="no",
                      bf16=False)  # GRPOConfig defaults to bf16 autocast, even on CPU
    ds = Dataset.from_list([{"prompt": "a long shared prompt about memories " * 4 + str(i)} for i in range(4)])
    return GRPOTrainer(model=model, reward_funcs=[lambda completions, **k: [float(len(c)) for c in completions]],
                       args=args, train_dataset=ds, processing_class=tok, shared_prefix=shared_prefix)


def test_grpo_override_equals_trl_path(tiny_model_dir, tmp_path, torch_one_thread):
    """memrl's GRPOTrainer log-probs (prompt once per group) equal TRL's own (every row in full)."""
    ours = _grpo_trainer(tiny_model_dir, tmp_path / "a", shared_prefix=True)
    trl_path = _grpo_trainer(tiny_model_dir, tmp_path / "b", shared_prefix=False)
    assert ours._own_path() and not trl_path._own_path()
    tok = ours.processing_class
    prompt = tok("a long shared prompt about memories " * 4)["input_ids"]
    g = torch.Generator().manual_seed(0)
    comps = [torch.randint(3, 200, (n,), generator=g).tolist() for n in (5, 2, 6, 3)]
    width, k = len(prompt) + 2, 6
    ids = torch.zeros(4, width + k, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, c in enumerate(comps):
        p = prompt if i < 2 else prompt[2:]  # two groups, the second one left-padded by 2
        ids[i, width - len(p): width] = torch.tensor(p)
        mask[i, width - len(p): width] = 1
        ids[i, width: width + len(c)] = torch.tensor(c)
        mask[i, width: width + len(c)] = 1
    a, ea, _ = ours._get_per_token_logps_and_entropies(ours.model, ids, mask, k, compute_entropy=True)
    b, eb, _ = trl_path._get_per_token_logps_and_entropies(trl_path.model, ids, mask, k, compute_entropy=True)
    valid = mask[:, -k:].bool()
    assert torch.allclose(a[valid], b[valid], atol=1e-4), (a - b)[valid].abs().max()
    assert torch.allclose(ea[valid], eb[valid], atol=1e-3)


def test_grpo_generation_one_prefill_per_group(tiny_model_dir, tmp_path, torch_one_thread):
    ours = _grpo_trainer(tiny_model_dir, tmp_path / "g", shared_prefix=True)
    tok = ours.processing_class
    p1, p2 = tok("first prompt " * 10)["input_ids"], tok("second prompt " * 12)["input_ids"]
    ours.generation_config.do_sample = False
    comps, lps = ours._generate_single_turn([p1] * 3 + [p2] * 3, None, {}, 3)
    assert lps is None and len(comps) == 6
    assert comps[0] == comps[1] == comps[2] and comps[3] == comps[4] == comps[5]  # greedy: identical in a group
    one = ours.model.generate(input_ids=torch.tensor([p2]), attention_mask=torch.ones(1, len(p2), dtype=torch.long),
                              do_sample=False, max_new_tokens=6, pad_token_id=tok.pad_token_id)
    eos = set(ours.eos_token_ids)
    ref = one[0, len(p2):].tolist()
    cut = next((j + 1 for j, t in enumerate(ref) if t in eos), len(ref))
    assert comps[3] == ref[:cut]


# ---- SmolLM2 with LoRA -------------------------------------------------------------------------------------
def _smollm_lora(real_model_dir, dtype):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    m = AutoModelForCausalLM.from_pretrained(str(real_model_dir), dtype=dtype)
    m = get_peft_model(m, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, task_type="CAUSAL_LM",
                                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]))
    for n, p in m.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.02)  # a trained-looking adapter, so gradients reach both A and B
    return m


@pytest.mark.slow
def test_smollm2_lora_float32_shared_equals_full_and_bf16_gap(real_model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(real_model_dir))
    text = tok.apply_chat_template([{"role": "user", "content": "Memories: " + "; ".join(
        f"Caroline said fact {i}" for i in range(25)) + ". Question: when did Caroline go?"}],
        tokenize=False, add_generation_prompt=True)
    prompt = tok(text)["input_ids"]
    g = torch.Generator().manual_seed(0)
    seqs = [prompt + torch.randint(100, 40000, (n,), generator=g).tolist() for n in (3, 8, 5, 8)]
    starts = [len(prompt)] * len(seqs)
    m32 = _smollm_lora(real_model_dir, torch.float32)
    ref, g_ref = _grads(m32, lambda: _full_logprobs(m32, seqs, starts))
    got, g_got = _grads(m32, lambda: prefix_hidden_logprobs(m32, seqs, starts))
    assert max((r - x).abs().max().item() for r, x in zip(ref, got)) < 1e-4
    assert ((g_ref - g_got).norm() / g_ref.norm()).item() < 1e-4
    # bfloat16 weights (dtype auto on this CPU), LoRA in float32: the gap to the float32 reference is numerics of
    # the bf16 trunk; the same function scores rollout and update, so PPO's step-0 ratio is exactly 1.
    m16 = _smollm_lora(real_model_dir, torch.bfloat16)
    with torch.no_grad():
        bf = prefix_hidden_logprobs(m16, seqs, starts)
        again = prefix_hidden_logprobs(m16, seqs, starts)
    gap = max((r - x).abs().max().item() for r, x in zip(ref, bf))
    mean_gap = torch.cat([(r - x).abs() for r, x in zip(ref, bf)]).mean().item()
    assert mean_gap < 0.1, mean_gap
    assert gap < 1.0, gap
    ratio = torch.exp(torch.cat(again) - torch.cat(bf))
    assert (ratio - 1).abs().max().item() < 0.01
