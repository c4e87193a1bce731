"""The demo pipeline end to end at toy size: every stage runs and summary.json has the documented shape."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_demo_runs_end_to_end_and_writes_summary(tmp_path):
    from memrl.config import load_config
    from memrl.demo import DemoConfig, run_demo

    cfg = load_config(DemoConfig, None, [
        f"out={tmp_path / 'demo'}", "num_conversations=10", "sessions=[2,3]", "turns=[6,8]",
        "questions_per_conversation=6", "manager_steps.sft=2", "manager_steps.grpo=1", "manager_steps.ppo=1",
        "answer_steps.sft=2", "answer_steps.grpo=1", "answer_steps.ppo=1", "batch_size=8", "rl_batch_size=8",
        "num_generations=4",
        "max_rl_rows=32"])
    run_demo(cfg, progress=False)
    out = tmp_path / "demo"
    s = json.loads((out / "summary.json").read_text())
    assert s["seeds"] == [0] and s["wall_seconds"] > 0
    stages = {(p["role"], p["stage"]) for p in s["policies"]}
    for role in ("manager", "answer"):
        for stage in ("baseline", "sft", "grpo", "ppo"):
            assert (role, stage) in stages
    for p in s["policies"]:
        assert 0.0 <= p["qa_f1"] <= 1.0 and 0.0 <= p["qa_em"] <= 1.0
        if p["role"] == "manager":
            assert p["op_accuracy"] is None or 0.0 <= p["op_accuracy"] <= 1.0
    gold = next(p for p in s["policies"] if p["name"] == "gold_ops")
    assert gold["op_accuracy"] == 1.0
    assert (out / "report.md").exists() and (out / "results.png").exists()
    assert (out / "seed0" / "manager_grpo" / "final_model" / "model.safetensors").exists()
    assert (out / "seed0" / "manager_grpo" / "final_model" / "README.md").exists()


def test_demo_config_rejects_bad_knobs():
    from memrl.config import ConfigError, load_config
    from memrl.demo import DemoConfig

    with pytest.raises(ConfigError, match="seeds"):
        load_config(DemoConfig, None, ["seeds=0"])
    with pytest.raises(ConfigError, match="manager_steps.sfft"):
        load_config(DemoConfig, None, ["manager_steps.sfft=3"])
