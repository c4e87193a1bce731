"""A real pretrained LM through memrl: SmolLM2-135M-Instruct, prepared once per session (conftest
`real_model_dir`, from the sha256-pinned PyPI wheel). Slow: each test loads the 135M model (<1 s from the prepared
directory) and runs it on 2 CPU cores; every test keeps its generation short."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
NAME = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def model_and_tok(real_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return (AutoModelForCausalLM.from_pretrained(str(real_model_dir), use_safetensors=True),
            AutoTokenizer.from_pretrained(str(real_model_dir)))


def test_prepared_dir_is_a_standard_hf_model_with_card_and_marker(real_model_dir):
    d = Path(real_model_dir)
    assert (d / "model.safetensors").is_file() and not list(d.glob("*.bin"))
    info = json.loads((d / ".memrl-prepared.json").read_text())
    assert info["parameters"] == 134_515_008 and info["chat_template"]
    card = (d / "README.md").read_text()
    for needle in ("license: apache-2.0", "base_model: HuggingFaceTB/SmolLM2-135M-Instruct", "Q4_1",
                   "not** the original release", info["source"]["gguf_sha256"], info["source"]["wheel_sha256"]):
        assert needle in card, needle


def test_prepare_is_idempotent(real_model_dir):
    from memrl.models import prepare

    before = (Path(real_model_dir) / ".memrl-prepared.json").stat().st_mtime_ns
    assert prepare(NAME, log=lambda s: None) == real_model_dir
    assert (Path(real_model_dir) / ".memrl-prepared.json").stat().st_mtime_ns == before


def test_prepared_weights_match_the_gguf_logits(real_model_dir, model_and_tok):
    import torch

    from memrl.models import REGISTRY, downloads_dir, load_gguf

    model, tok = model_and_tok
    gmodel, gtok = load_gguf(downloads_dir() / Path(REGISTRY[NAME].member).name)  # where prepare keeps it
    msgs = [{"role": "user", "content": "Where did Caroline move from four years ago?"}]
    ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    gids = gtok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    assert torch.equal(ids["input_ids"], gids["input_ids"])  # same tokenizer and chat template
    with torch.no_grad():
        a = model(**ids).logits
        b = gmodel(**gids).logits
    assert torch.allclose(a, b, atol=1e-4, rtol=0), (a - b).abs().max()


def test_backend_generation_is_scored_leniently(real_model_dir):
    from memrl.policies.backends import SamplingParams, make_backend
    from memrl.protocol.modes import parse_answer_output, scored_answer

    backend = make_backend(f"transformers:{NAME}", device="cpu", batch_size=2)  # the name resolves
    assert Path(backend.model.name_or_path) == Path(real_model_dir)
    prompts = [[{"role": "user", "content": "Memories:\n[1] Caroline: I moved from Sweden four years ago.\n\n"
                 "Question: Where did Caroline move from?"}],
               [{"role": "user", "content": "What is the capital of France? Answer in one word."}]]
    gens = backend.generate(prompts, SamplingParams(max_tokens=16))
    for g in gens:
        p = parse_answer_output(g[0].text, "memory_r1")
        p.raw = g[0].text
        answer, rule = scored_answer(p, "memory_r1")
        assert answer and rule in ("format", "label", "first_sentence"), g[0].text
    assert "paris" in gens[1][0].text.lower()


def _lora_b(model_dir: Path) -> dict:
    from safetensors.torch import load_file

    return {k: v for k, v in load_file(str(model_dir / "adapter_model.safetensors")).items() if "lora_B" in k}


def test_one_lora_sft_step_changes_the_adapter(real_model_dir, tmp_path):
    from memrl.config import load_config
    from memrl.train.config import TrainConfig
    from memrl.train.trainer import train

    root = Path(__file__).resolve().parents[1]
    synth = _synth(tmp_path)
    cfg = load_config(TrainConfig, str(root / "configs/train/sft_answer_smollm2.yaml"),
                      [f"data.path={synth}", f"output_dir={tmp_path / 'sft'}", "max_steps=1", "batch_size=2",
                       "logging_steps=1"])
    train(cfg, progress=False)
    b = _lora_b(tmp_path / "sft" / "final_model")
    assert b and any(t.abs().max() > 0 for t in b.values())  # LoRA B starts at 0: one step moved it


def test_one_lora_grpo_step_changes_the_adapter(real_model_and_tok_fresh, tmp_path):
    """One TRL GRPO step with LoRA on the real model (a reward with spread: the raw model's strict format
    reward is 0 everywhere, which gives GRPO no gradient; issue 17)."""
    from datasets import Dataset

    from memrl.train.algorithms.grpo import grpo_trainer
    from memrl.train.common import log_callback
    from memrl.train.run import MetricsLog
    from memrl.train.trainer import fit
    from tests.test_train import _train_cfg

    model, tok = real_model_and_tok_fresh

    def length_reward(completions, **kw):
        return [float(len(c[0]["content"])) / 50.0 for c in completions]

    rows = [{"prompt": [{"role": "user", "content": f"Name a colour. ({i})"}]} for i in range(2)]
    cfg = _train_cfg(algo="grpo", role="answer", output_dir=str(tmp_path), max_steps=1, learning_rate=1e-3,
                     batch_size=4, grpo={"num_generations": 4}, max_completion_length=8, seed=0,
                     model={"path": NAME, "lora": True})
    log = log_callback(MetricsLog(tmp_path / "m.jsonl"), cfg.role)
    trainer = fit(cfg, grpo_trainer(cfg, model, tok, Dataset.from_list(rows), [length_reward], tmp_path,
                                    callbacks=(log,)), tmp_path)
    b = {n: p for n, p in trainer.model.named_parameters() if "lora_B" in n}
    assert b and all(not p.requires_grad or p.is_leaf for p in b.values())
    assert any(p.detach().abs().max() > 0 for p in b.values())  # LoRA B starts at 0: one step moved it


@pytest.fixture
def real_model_and_tok_fresh(real_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return (AutoModelForCausalLM.from_pretrained(str(real_model_dir), use_safetensors=True),
            AutoTokenizer.from_pretrained(str(real_model_dir)))


def _synth(tmp_path: Path) -> Path:
    from memrl.data.io import write_conversations
    from memrl.data_synth.config import SynthConfig
    from memrl.data_synth.synth import synthesize_conversation

    cfg = SynthConfig(seed=0, sessions_per_conversation=[2, 2], turns_per_session=[4, 4], questions_per_conversation=4,
                      facts_per_speaker=[2, 3], events_per_speaker=[1, 1], plans_per_speaker=[0, 1])
    convs = [synthesize_conversation(cfg, i) for i in range(3)]
    d = tmp_path / "synth"
    d.mkdir()
    write_conversations(d / "train.jsonl", convs[:2])
    write_conversations(d / "validation.jsonl", convs[2:])
    write_conversations(d / "test.jsonl", convs[2:])
    return d


def test_eval_on_a_few_conv26_questions_writes_results(real_model_dir, conv26_path, tmp_path):
    from memrl.cli import main

    out = tmp_path / "eval"
    cfg_file = Path(__file__).resolve().parents[1] / "configs" / "eval" / "locomo.yaml"
    rc = main(["eval", "--config", str(cfg_file), f"data={conv26_path}",
               f"policy=transformers:{NAME}", "answer_mode=memory_r1", "max_questions=3", "top_k_per_speaker=2",
               "max_new_tokens=16", "bootstrap_samples=0", "progress=false", f"out={out}"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert res["counts"]["questions"] == 3
    recs = [json.loads(ln) for ln in (out / "predictions.jsonl").read_text().splitlines()]
    assert all(r["raw_completion"] for r in recs)  # the raw completion is kept
    assert all(r["prediction"] for r in recs)  # and scored leniently even where the format failed
    ff = res["format_failures"]
    assert ff["answers_unparsed"] == sum(not r["parse_ok"] for r in recs)
    assert ff["scored_leniently"] == sum(r["answer_rule"] not in (None, "format") for r in recs)
