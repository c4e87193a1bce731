"""memrl.train.sft: the SFT loss with the LM head on label positions only equals TRL's every-position path on CPU
(loss, gradients, entropy and token accuracy), and it projects only the label positions."""

from __future__ import annotations

import pytest
import torch


def _cfg(out, compact: bool):
    from omegaconf import OmegaConf

    from memrl.train.config import TrainConfig

    cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(TrainConfig), {
        "algo": "sft", "role": "answer", "output_dir": str(out), "max_steps": 1, "batch_size": 4,
        "learning_rate": 1e-3, "model": {"lora": True, "lora_r": 4}, "sft": {"compact_lm_head": compact},
        "trl": {"gradient_checkpointing": False}}))
    cfg.validate()
    return cfg


def _rows():
    # long prompts, short answers: the shape of memrl's answer SFT rows
    return [{"prompt": [{"role": "user", "content": " ".join(f"memory {i} {j} says {i * j}" for j in range(12))
                         + f" Question {i}?"}],
             "completion": [{"role": "assistant", "content": f"answer {i}"}]} for i in range(4)]


def _loss_and_grads(tiny_model_dir, out, compact: bool, monkeypatch):
    import trl.trainer.utils as trl_utils
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from memrl.train.algorithms.sft import sft_trainer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    cfg = _cfg(out, compact)
    trainer = sft_trainer(cfg, model, tok, _rows(), out)
    assert trainer.compact_lm_head is compact
    rows_scored = []
    original = trl_utils._ChunkedLogProbFunction.apply

    def counting_apply(hidden, *args):  # observes how many positions reach the LM head; computes as before
        rows_scored.append(hidden.shape[0])
        return original(hidden, *args)

    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.train()
    with monkeypatch.context() as m:
        m.setattr(trl_utils._ChunkedLogProbFunction, "apply", counting_apply)
        loss = trainer.compute_loss(trainer.model, dict(batch))
    loss.backward()
    grads = torch.cat([p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None])
    labels = batch["labels"][:, 1:]
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items() if k in ("entropy", "mean_token_accuracy")}
    return loss.detach(), grads, metrics, rows_scored, int((labels != -100).sum()), labels.numel()


def test_compact_head_equals_trl_path(tiny_model_dir, tmp_path, torch_one_thread, monkeypatch):
    l0, g0, m0, rows0, valid, every = _loss_and_grads(tiny_model_dir, tmp_path / "trl", False, monkeypatch)
    l1, g1, m1, rows1, valid1, _ = _loss_and_grads(tiny_model_dir, tmp_path / "compact", True, monkeypatch)
    assert valid == valid1 and 0 < valid < every / 4  # the answer is a small share of each row
    assert rows0 == [every]  # TRL's path off Triton: every position through the head
    assert rows1 == [valid]  # memrl's: the label positions only
    assert torch.isfinite(l1) and l1.item() == pytest.approx(l0.item(), abs=1e-5)
    assert g0.abs().max() > 0 and torch.allclose(g1, g0, atol=1e-5, rtol=1e-4)
    assert m1 == pytest.approx(m0, abs=1e-5) and set(m0) == {"entropy", "mean_token_accuracy"}


def test_compact_patch_is_scoped():
    import trl.trainer.utils as trl_utils

    from memrl.train.sft import compact_fused_head

    cpu = torch.device("cpu")
    assert trl_utils._use_triton(cpu) is False
    with compact_fused_head():
        assert trl_utils._use_triton(cpu) is True
    assert trl_utils._use_triton(cpu) is False
    with pytest.raises(RuntimeError), compact_fused_head():
        raise RuntimeError("boom")
    assert trl_utils._use_triton(cpu) is False
