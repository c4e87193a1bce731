"""`memrl train` refuses loudly instead of exiting 0 with a wrong result: a diverged run never saves a NaN final
model, a fresh run never writes into another run's directory, a resume never continues a run made with another
config, and settings a trainer would ignore (report_to / trl.* under PPO, unknown TRL knobs) are errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from memrl.cli import main
from memrl.train import guards

ROOT = Path(__file__).resolve().parents[1]


def _sft(synth_dir, out, *extra):
    return main(["train", "--config", str(ROOT / "configs/train/sft_manager_tiny.yaml"), f"data.path={synth_dir}",
                 f"output_dir={out}", "max_steps=3", "batch_size=4", *extra])


@pytest.mark.slow
def test_diverged_run_stops_and_saves_no_final_model(synth_dir, tmp_path, capsys):
    assert _sft(synth_dir, tmp_path / "run", "learning_rate=1e9") == 1
    err = capsys.readouterr().err
    assert "diverged" in err and "non-finite" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "final_model").exists()


def test_non_finite_weights_are_refused():
    import torch

    model = torch.nn.Linear(2, 2)
    guards.assert_finite_weights(model)
    with torch.no_grad():
        model.weight[0, 1] = float("nan")
    with pytest.raises(guards.DivergenceError, match="weight"):
        guards.assert_finite_weights(model)


def test_finite_metrics_logs_then_stops_on_nan():
    rows = []
    log = guards.FiniteMetrics(rows.append, learning_rate=0.5)
    log({"step": 1, "loss": 1.0, "grad_norm": 2.0})
    with pytest.raises(guards.DivergenceError, match="step 2: non-finite grad_norm"):
        log({"step": 2, "loss": 1.0, "grad_norm": math.inf})
    assert [r["step"] for r in rows] == [1, 2]  # the bad row is kept for the post-mortem


@pytest.mark.slow
def test_fresh_run_refuses_another_runs_directory_and_resume_checks_the_config(synth_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert _sft(synth_dir, out, "save_steps=1") == 0
    capsys.readouterr()
    # A second fresh run into the same directory used to keep the old checkpoint-* and later resume from them.
    assert _sft(synth_dir, out) == 1
    assert "already holds a run" in capsys.readouterr().err
    assert (out / "final_model").exists()  # nothing was lost
    # A resume with another learning rate would continue a checkpoint made under another config.
    assert _sft(synth_dir, out, "resume=true", "learning_rate=0.01") == 1
    err = capsys.readouterr().err
    assert "another config" in err and "learning_rate" in err
    # overwrite=true replaces the old run entirely: no old checkpoint survives.
    assert _sft(synth_dir, out, "overwrite=true") == 0
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-3"]  # TRL's final save; 1, 2 gone
    steps = [json.loads(line).get("step") for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert max(s for s in steps if s is not None) == 3


def test_resume_config_difference_names_keys_and_allows_schedule_keys(tmp_path):
    from omegaconf import OmegaConf

    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml({"learning_rate": 0.001, "max_steps": 10,
                                                             "model": {"lora_r": 8}}))
    guards.check_resume_config(tmp_path, {"learning_rate": 0.001, "max_steps": 20, "model": {"lora_r": 8},
                                          "resume": "true"})
    with pytest.raises(guards.RunDirError, match=r"model.lora_r: 8 -> 16"):
        guards.check_resume_config(tmp_path, {"learning_rate": 0.001, "max_steps": 10, "model": {"lora_r": 16}})


@pytest.mark.parametrize("recipe,override,message", [
    ("ppo_manager_tiny", "report_to=[wandb]", "memrl's PPO logs to metrics.jsonl"),
    ("ppo_manager_tiny", "trl.bogus=1", "PPO is memrl's own trainer"),
    ("grpo_manager_tiny", "trl.not_a_knob=1", "not a GRPOConfig field"),
    ("sft_manager_tiny", "trl.max_lenght=5", "did you mean trl.max_length"),
    ("grpo_manager_tiny", "report_to=[foo]", "unknown logger 'foo'"),
    ("grpo_manager_tiny", "learning_rate=-1", "learning_rate must be > 0"),
    ("ppo_manager_tiny", "ppo.learning_rate=-1", "ppo.learning_rate must be > 0"),
    ("grpo_manager_tiny", "logging_steps=0", "logging_steps must be > 0"),
])
def test_settings_a_trainer_would_ignore_or_crash_on_are_config_errors(recipe, override, message, capsys):
    rc = main(["train", "--config", str(ROOT / f"configs/train/{recipe}.yaml"), override, "--dry-run"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err, err
    assert "Traceback" not in err


def test_report_to_a_logger_that_is_not_installed_is_named(capsys):
    from transformers.integrations import integration_utils

    if integration_utils.is_tensorboard_available():
        pytest.skip("tensorboard is installed here")
    rc = main(["train", "--config", str(ROOT / "configs/train/grpo_manager_tiny.yaml"), "report_to=[tensorboard]",
               "--dry-run"])
    assert rc == 2 and "tensorboard package is not installed" in capsys.readouterr().err


def test_runs_record_what_of_them_reads_gold():
    """Issue #18: a run's summary names every gold-derived input; the defaults have none."""
    from memrl.envs.manager.config import ManagerEnvConfig
    from memrl.train.algorithms.sft import SFTSettings
    from memrl.train.config import TrainConfig
    from memrl.train.trainer import oracle_inputs

    assert oracle_inputs(TrainConfig(role="answer")) == []
    assert oracle_inputs(TrainConfig(role="manager")) == []
    flagged = oracle_inputs(TrainConfig(role="manager", manager_env=ManagerEnvConfig.oracle()))
    assert any("facts=auto" in f for f in flagged) and any("w_op" in f for f in flagged)
    assert oracle_inputs(TrainConfig(role="manager", algo="sft", sft=SFTSettings(teacher="noisy_teacher")))
    assert any("state_builder=auto" in f for f in oracle_inputs(TrainConfig(role="manager", state_builder="auto")))
    assert any("change_focus" in f for f in oracle_inputs(TrainConfig(role="manager", change_focus=0.5)))
    assert oracle_inputs(TrainConfig(role="manager", probed_only=True)) == []
    from memrl.envs.answer.config import AnswerEnvConfig

    assert len(oracle_inputs(TrainConfig(role="answer", answer_env=AnswerEnvConfig(include_gold=True, manager="auto")))) == 2


def test_manager_rl_rows_start_from_banks_a_deployed_pipeline_could_write(synth_dir):
    """The banks manager RL rows start from are written by `state_builder` (default rule_based_text, which reads
    only the turns); gold-op replay happens only when asked for (state_builder=auto) and is flagged as oracle."""
    from memrl.train.common import rl_rows
    from memrl.train.config import DataConfig, TrainConfig

    def rows(**kw):
        return rl_rows(TrainConfig(role="manager", algo="grpo", data=DataConfig(path=str(synth_dir)), **kw))[0]

    default, gold = rows(), rows(state_builder="auto")
    assert set(default["builder"]) == {"rule_based_text"} and set(gold["builder"]) == {"gold_ops"}
    assert default["bank_json"] != gold["bank_json"]  # different writers, different banks
    with pytest.raises(ValueError, match="state_builder.*gold_opz"):
        TrainConfig(role="manager", state_builder="gold_opz").validate()


def test_probed_only_keeps_the_rows_where_the_outcome_reward_exists(synth_dir):
    """Manager RL rows without QA probes score only validity and size; probed_only keeps the rows with probes, and
    on those a NOOP and an ADD of the turn score differently through the answers (the gradient GRPO needs)."""
    import json

    from memrl.train.common import rl_rows
    from memrl.train.config import DataConfig, TrainConfig

    cfg = TrainConfig(role="manager", algo="grpo", data=DataConfig(path=str(synth_dir)), probed_only=True)
    every, _ = rl_rows(TrainConfig(role="manager", algo="grpo", data=DataConfig(path=str(synth_dir))))
    probed, (reward,) = rl_rows(cfg)
    n_probed = sum(bool(json.loads(p)) for p in every["probes"])
    assert 0 < len(probed) == n_probed < len(every)
    assert all(json.loads(p) for p in probed["probes"])
    noop, add = '{"ops": [{"op": "NOOP"}]}', '{"ops": [{"op": "ADD"}]}'  # an ADD without text stores the turn
    differ = 0
    for row in probed.select(range(min(10, len(probed)))):
        cols = {k: [v, v] for k, v in row.items() if k != "prompt"}
        r_noop, r_add = reward(prompts=[row["prompt"]] * 2, completions=[noop, add], **cols)
        assert r_noop > -1 and r_add > -1  # both parse and apply
        differ += abs(r_noop - r_add) > 0.1  # more than the size term: the probes' answers moved
    assert differ, "no probed row where storing the turn changes the reward"
    for wrong in ({"role": "answer"}, {"algo": "sft"}, {"manager_mode": "episode"}):
        with pytest.raises(ValueError, match="probed_only selects manager RL snapshot rows"):
            TrainConfig(**{"role": "manager", "algo": "grpo", "probed_only": True, **wrong}).validate()


def test_start_steps_add_each_conversations_first_steps_to_the_probed_rows(synth_dir):
    """start_steps: the probed rows plus each conversation's first N steps, whose banks are empty or small (where
    the RL manager had never been trained and proposed ops on ids that do not exist)."""
    import json

    from memrl.train.common import rl_rows
    from memrl.train.config import DataConfig, TrainConfig
    from memrl.train.trainer import oracle_inputs

    def rows(**kw):
        return rl_rows(TrainConfig(role="manager", algo="grpo", data=DataConfig(path=str(synth_dir)),
                                   probed_only=True, **kw))[0]

    probed, starts = rows(), rows(start_steps=3)
    key = lambda ds: {(c, s) for c, s in zip(ds["conversation_id"], ds["step_index"])}
    added = key(starts) - key(probed)
    convs = set(starts["conversation_id"])
    assert key(probed) <= key(starts) and added
    assert all(step < 3 for _, step in added)
    assert {(c, s) for c in convs for s in range(3)} <= key(starts)  # every conversation's first 3 steps
    first = [b for s, b in zip(starts["step_index"], starts["bank_json"]) if s == 0]
    assert first and all(json.loads(b)["entries"] == [] for b in first)  # step 0: an empty bank
    assert oracle_inputs(TrainConfig(role="manager", algo="grpo", probed_only=True, start_steps=3)) == []
    with pytest.raises(ValueError, match="without probed_only"):
        TrainConfig(role="manager", algo="grpo", start_steps=3).validate()
    with pytest.raises(ValueError, match="start_steps must be >= 0"):
        TrainConfig(role="manager", algo="grpo", probed_only=True, start_steps=-1).validate()


def test_probe_answerer_trained_in_another_answer_mode_is_refused(synth_dir, tmp_path, capsys):
    """A manager run whose LLM probe answerer was trained in another answer mode would read every probe in a prompt
    the answerer does not parse: QA 0 on every probe, exit 0. It exits 2 naming the mode to set, before training."""
    from memrl.train.episodes import trained_answer_mode

    answer_run = tmp_path / "answer_run"
    (answer_run / "final_model").mkdir(parents=True)
    (answer_run / "config.yaml").write_text("role: answer\nanswer_env:\n  answer_mode: short\n")
    manager_run = tmp_path / "manager_run"
    (manager_run / "final_model").mkdir(parents=True)
    (manager_run / "config.yaml").write_text("role: manager\nanswer_env:\n  answer_mode: short\n")
    assert trained_answer_mode(str(answer_run / "final_model")) == "short"
    assert trained_answer_mode(str(manager_run / "final_model")) is None  # not an answer agent
    assert trained_answer_mode(str(tmp_path / "nowhere")) is None

    out = tmp_path / "grpo"
    code = main(["train", "--config", str(ROOT / "configs/train/grpo_manager_tiny.yaml"), f"data.path={synth_dir}",
                 f"output_dir={out}", f"probe_answerer={answer_run / 'final_model'}", "answer_env.answer_mode=compact",
                 "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "trained in answer mode 'short'" in err and "answer_env.answer_mode=short" in err and "Traceback" not in err
    assert not (out / "final_model").exists()
    # a picker checkpoint gives no answer in any mode: named as such, not "set answer_mode=picker"
    (answer_run / "config.yaml").write_text("role: answer\nanswer_env:\n  answer_mode: picker\n")
    code = main(["train", "--config", str(ROOT / "configs/train/grpo_manager_tiny.yaml"), f"data.path={synth_dir}",
                 f"output_dir={out}", f"probe_answerer={answer_run / 'final_model'}", "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and "gives no answer" in err and "answer_mode=picker" not in err, err
