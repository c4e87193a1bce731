"""The demo pipeline end to end at toy size: every stage runs and summary.json has the documented shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_runs_end_to_end_and_writes_summary(tmp_path):
    from memrl.config import load_config
    from memrl.demo.oracle_tiny import DemoConfig, run_demo

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
            assert 0.0 <= p["format_failure_rate"] <= 1.0
    gold = next(p for p in s["policies"] if p["name"] == "gold_ops")
    assert gold["op_accuracy"] == 1.0
    assert (out / "report.md").exists() and (out / "results.png").exists()
    assert (out / "seed0" / "manager_grpo" / "final_model" / "model.safetensors").exists()
    assert (out / "seed0" / "manager_grpo" / "final_model" / "README.md").exists()

    # resume=true reuses every finished stage (same configs) and reproduces the same evaluation.
    (out / "seed0" / "answer_ppo" / "summary.json").unlink()  # as if killed during the last stage
    cfg.resume = True
    again = run_demo(cfg, progress=False)
    assert len(again["reused_stages"]) == 5 and not any("answer_ppo" in d for d in again["reused_stages"])
    firsts = {(p["name"], p["stage"]): p["qa_f1"] for p in s["policies"] if p["name"] != "answer-ppo"}
    assert {(p["name"], p["stage"]): p["qa_f1"] for p in again["policies"] if p["name"] != "answer-ppo"} == firsts
    assert (out / "seed0" / "answer_ppo" / "summary.json").exists()


def test_manager_op_accuracy_counts_format_failures_as_noops():
    """A manager whose output never parses changes nothing: it agrees with gold only where gold is NOOP, and
    its format-failure rate is 1 (a mean over the environment's op term alone would have no values)."""
    from memrl.data_synth.config import SynthConfig
    from memrl.data_synth.synth import synthesize_conversation
    from memrl.demo.oracle_tiny import evaluate_manager
    from memrl.envs.answer.config import AnswerEnvConfig
    from memrl.envs.manager.config import ManagerEnvConfig
    from memrl.envs.manager.episode import drive_manager
    from memrl.policies.baselines import make_baseline

    convs = [synthesize_conversation(SynthConfig(seed=5, sessions_per_conversation=[3, 4],
                                                 turns_per_session=[8, 10]), i) for i in range(2)]
    env_cfg = ManagerEnvConfig(probes="none")
    reader_cfg = AnswerEnvConfig(answer_mode="compact", bank=ManagerEnvConfig(probes="none"))

    class Garbage:
        name = "garbage"
        kind = "manager"

        def decide(self, steps):
            return ['{"ops": [{"op": "UPD'] * len(steps)

    gold_pairs = [g.op for ep in drive_manager(convs, make_baseline("gold_ops"), env_cfg, score=False)
                  for u in ep.plan.units for g in u.gold_ops if g.op != "NOOP" or g.entry]
    noop_share = sum(op == "NOOP" for op in gold_pairs) / len(gold_pairs)
    assert 0.0 < noop_share < 1.0
    bad = evaluate_manager(Garbage(), convs, env_cfg, reader_cfg)
    assert bad["format_failure_rate"] == 1.0
    assert bad["op_accuracy"] == pytest.approx(noop_share)
    gold = evaluate_manager(make_baseline("gold_ops"), convs, env_cfg, reader_cfg)
    assert gold["op_accuracy"] == 1.0 and gold["format_failure_rate"] == 0.0 and gold["qa_f1"] > bad["qa_f1"]


def test_demo_config_rejects_bad_knobs():
    from memrl.config import ConfigError, load_config
    from memrl.demo.oracle_tiny import DemoConfig

    with pytest.raises(ConfigError, match="seeds"):
        load_config(DemoConfig, None, ["seeds=0"])
    with pytest.raises(ConfigError, match="manager_steps.sfft"):
        load_config(DemoConfig, None, ["manager_steps.sfft=3"])


@pytest.mark.slow
def test_outcome_demo_runs_every_stage_and_reports_paired_differences(tmp_path, tiny_model_dir):
    """`memrl demo`'s pipeline at toy size on the tiny model: start, GRPO, PPO, shuffled control, baselines."""
    from memrl.config import ConfigError, load_config
    from memrl.demo.outcome import OutcomeDemoConfig, run_outcome_demo

    cfg = load_config(OutcomeDemoConfig, None, [
        f"out={tmp_path / 'demo'}", f"model={tiny_model_dir}", "data=", "benchmark=synthetic",
        "warm_start_conversations=0", "algos=[grpo,ppo]", "num_conversations=10", "sessions=[2,2]",
        "turns=[6,6]", "questions_per_conversation=4", "eval_questions_per_conversation=3", "grpo_steps=1",
        "ppo_iterations=1", "batch_size=4", "num_generations=2", "max_new_tokens=4", "baselines=[bm25]",
        "lora_r=4", "seeds=[0]", "curve_every=1", "ceiling_samples=2"])
    s = run_outcome_demo(cfg, progress=False)
    out = tmp_path / "demo"
    assert s["ceiling"]["samples"] == 2 and s["ceiling"]["best_of_n_f1"] >= s["ceiling"]["mean_sampled_f1"]
    assert [k for k, _ in s["curves"]["grpo_s0"]["eval_f1"]] == [0, 1] and (out / "curves.png").exists()
    assert s["curves"]["ppo_s0"]["train_reward"]
    labels = [p["label"] for p in s["policies"]]
    assert labels == ["start", "grpo_s0", "ppo_s0", "grpo_shuffled_s0", "ppo_shuffled_s0", "bm25"]
    start = s["policies"][0]
    assert start["diff_vs_start"] is None
    for p in s["policies"][1:]:
        assert p["diff_vs_start"] == pytest.approx(p["locomo_f1"] - start["locomo_f1"])
        assert p["outputs"]["n"] > 0 and 0.0 <= p["outputs"]["top_share"] <= 1.0
    shuffled = (out / "train" / "grpo_shuffled_s0" / "config.yaml").read_text()
    assert "reward_control: shuffle" in shuffled
    assert "include_gold: false" in shuffled and "mode: short" in shuffled
    assert (out / "report.md").read_text().count("grpo_shuffled_s0") >= 2 and (out / "results.png").exists()
    assert not (out / "eval" / "start" / "results.json").read_text().count('"oracle": true')
    # resume=true reuses every finished stage of the same config, and an unfinished one trains again
    (out / "train" / "ppo_s0" / "summary.json").unlink()
    cfg.resume = True
    again = run_outcome_demo(cfg, progress=False)
    assert [k for k in again["timings"] if k.startswith("train/")] == ["train/ppo_s0"]
    assert [p["locomo_f1"] for p in again["policies"] if p["label"] != "ppo_s0"] == \
        [p["locomo_f1"] for p in s["policies"] if p["label"] != "ppo_s0"]
    # The synthetic -> real warm start: SFT on synthetic conversations' gold answers, then RL from that adapter; it is
    # the `start` row and the model `prompt_only`. grpo_beta and temperature reach the recipe.
    knobs = [f"out={tmp_path / 'warm'}", f"model={tiny_model_dir}", f"data={out / 'data'}", "benchmark=synthetic",
             "eval_questions_per_conversation=3", "grpo_steps=1", "algos=[grpo]", "shuffled_control=false",
             "batch_size=4", "num_generations=2", "max_new_tokens=4", "baselines=[]", "lora_r=4", "seeds=[0]",
             "grpo_beta=0.04", "temperature=0.7", "warm_start_conversations=5", "warm_start_steps=2"]
    with pytest.raises(ConfigError, match="init_from and warm_start_conversations"):
        load_config(OutcomeDemoConfig, None, knobs + ["init_from=somewhere"])
    w = run_outcome_demo(load_config(OutcomeDemoConfig, None, knobs), progress=False)
    assert [p["label"] for p in w["policies"]] == ["start", "prompt_only", "grpo_s0"]
    assert w["policies"][1]["locomo_f1"] == start["locomo_f1"]  # the same model on the same questions
    sft = tmp_path / "warm" / "warm_start" / "sft"
    assert "teacher: gold_answer" in (sft / "config.yaml").read_text() and (sft / "final_model").is_dir()
    recipe = (tmp_path / "warm" / "train" / "grpo_s0" / "config.yaml").read_text()
    assert f"init_from: {sft / 'final_model'}" in recipe
    assert "beta: 0.04" in recipe and "temperature: 0.7" in recipe


def test_demo_pipeline_is_picked_by_the_config_file(tmp_path):
    from memrl.config import ConfigError
    from memrl.demo import _pipeline

    configs = Path(__file__).resolve().parents[1] / "configs" / "demo"
    assert _pipeline(None, []) == "outcome"
    assert _pipeline(str(configs / "oracle_tiny.yaml"), []) == "oracle_tiny"
    assert _pipeline(str(configs / "default.yaml"), []) == "outcome"
    with pytest.raises(ConfigError, match="pipeline"):
        _pipeline(None, ["pipeline=nope"])


def test_curves_draw_one_colour_per_group_with_the_mean_over_seeds(tmp_path):
    """Several seeds: a group's seeds are thin lines and its mean over seeds one labelled line per panel."""
    from memrl.demo.outcome import _plot_curves

    curves = {f"{g}_s{s}": {"train_reward": [(1, 0.1 * s), (2, 0.2)], "eval_f1": [(0, 0.2), (2, 0.2 + 0.01 * s)]}
              for g in ("grpo", "grpo_shuffled") for s in (0, 1)}
    fig = _plot_curves(curves, tmp_path)
    assert (tmp_path / "curves.png").exists()
    _, f1_axis = fig.axes
    labels = [line.get_label() for line in f1_axis.get_lines() if not line.get_label().startswith("_")]
    assert labels == ["grpo (mean of 2 seeds)", "grpo_shuffled (mean of 2 seeds)"]
    mean_line = f1_axis.get_lines()[2]
    assert list(mean_line.get_ydata()) == pytest.approx([0.2, 0.205])


def test_make_demo_config_is_the_schema_default():
    """`make demo` runs configs/demo/default.yaml; `memrl demo` with no config must run the same thing."""
    from memrl.config import as_dict, load_config
    from memrl.demo.outcome import OutcomeDemoConfig

    path = Path(__file__).resolve().parents[1] / "configs" / "demo" / "default.yaml"
    assert as_dict(load_config(OutcomeDemoConfig, str(path), [])) == as_dict(OutcomeDemoConfig())
