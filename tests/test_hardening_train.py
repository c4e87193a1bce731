"""Training, synthesis, evaluation and demo runs refuse what would give a wrong result: PPO keys that had no
effect, a resume onto changed data, two runs in one directory, a demo that evaluates on its training split or
fails only after its training stages."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _cli(argv, capsys):
    from memrl.cli import main

    rc = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


# ---- one source of truth for PPO's shared settings ----------------------------------------------------------
@pytest.mark.parametrize("key,governing", [("ppo.batch_size=3", "batch_size"), ("ppo.total_iterations=7", "max_steps"),
                                           ("ppo.temperature=0.5", "temperature"),
                                           ("ppo.max_new_tokens=9", "max_completion_length"), ("ppo.seed=4", "seed"),
                                           ("ppo.save_every=2", "save_steps"), ("ppo.log_every=2", "logging_steps")])
def test_ppo_keys_that_the_top_level_governs_are_refused_naming_both(key, governing, capsys):
    rc, out, err = _cli(["train", "--config", ROOT / "configs/train/ppo_manager_tiny.yaml", key, "--dry-run"], capsys)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and key.split("=")[0] in err and f"'{governing}'" in err and "no effect" in err


def test_ppo_key_in_a_yaml_file_is_refused_too(tmp_path):
    from memrl.config import ConfigError, load_config
    from memrl.train.config import TrainConfig

    f = tmp_path / "r.yaml"
    f.write_text("algo: ppo\nppo:\n  kl_coef: 0.1\n  temperature: 0.5\n")
    with pytest.raises(ConfigError, match=r"ppo.temperature.*r.yaml.*'temperature'"):
        load_config(TrainConfig, f)


def test_ppo_runs_with_the_top_level_settings():
    from memrl.config import load_config
    from memrl.train.builder import ppo_config
    from memrl.train.config import TrainConfig

    cfg = load_config(TrainConfig, ROOT / "configs/train/ppo_manager_tiny.yaml",
                      ["batch_size=3", "max_steps=7", "temperature=0.5", "seed=5", "save_steps=2", "logging_steps=3",
                       "max_completion_length=11", "ppo.kl_coef=0.2"])
    p = ppo_config(cfg)
    assert (p.batch_size, p.total_iterations, p.temperature, p.seed, p.save_every, p.log_every, p.max_new_tokens,
            p.kl_coef) == (3, 7, 0.5, 5, 2, 3, 11, 0.2)


def test_outcome_demo_ppo_stage_sets_only_ppo_own_keys(tmp_path):
    from memrl.demo.outcome import OutcomeDemoConfig, train_config
    from memrl.train.builder import ppo_config

    cfg = OutcomeDemoConfig(ppo_iterations=3, batch_size=6, num_generations=2, max_new_tokens=7)
    p = ppo_config(train_config(cfg, "ppo", 4, tmp_path / "r"))
    assert (p.total_iterations, p.batch_size, p.max_new_tokens, p.seed, p.minibatch_size) == (3, 6, 7, 4, 3)


def test_resume_of_a_run_saved_with_the_old_ppo_keys_is_not_refused_for_them():
    from memrl.config import as_dict
    from memrl.train.config import TrainConfig
    from memrl.train.guards import config_differences

    now = as_dict(TrainConfig(algo="ppo"))
    old = as_dict(TrainConfig(algo="ppo"))
    old["ppo"].update(total_iterations=50, batch_size=16, temperature=1.0)
    assert config_differences(old, now, TrainConfig.GOVERNED_KEYS) == []
    old["ppo"]["kl_coef"] = 0.5
    assert config_differences(old, now, TrainConfig.GOVERNED_KEYS) == ["ppo.kl_coef: 0.5 -> 0.05"]


# ---- resume: same data, and say when there is nothing to resume ---------------------------------------------
def _sft(data, out, *extra):
    from memrl.cli import main

    return main(["train", "--config", str(ROOT / "configs/train/sft_manager_tiny.yaml"), f"data.path={data}",
                 f"output_dir={out}", "max_steps=2", "batch_size=4", "logging_steps=1", *extra])


@pytest.mark.slow
def test_resume_refuses_changed_training_data_and_says_when_it_starts_fresh(synth_dir, tmp_path, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(synth_dir, data)
    out = tmp_path / "run"
    # resume=true where there is no run: a fresh run, said in one line on stderr
    assert _sft(data, out, "save_steps=1", "resume=true") == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("resume=")]
    assert lines == [f"resume=true: {out} holds no run; starting a fresh run from step 0"]
    recorded = json.loads((out / "data_fingerprint.json").read_text())["files"]
    assert list(recorded) == [str(data / "train.jsonl")]
    assert recorded[str(data / "train.jsonl")] == hashlib.sha256((data / "train.jsonl").read_bytes()).hexdigest()

    # the same data.path re-written (other conversations): the checkpoint must not continue on it
    original = (data / "train.jsonl").read_text()
    rows = original.splitlines(keepends=True)
    (data / "train.jsonl").write_text("".join(rows[::-1]))
    before = (out / "metrics.jsonl").read_text()
    assert _sft(data, out, "save_steps=1", "resume=true", "max_steps=3") == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "training data changed" in err and str(data / "train.jsonl") in err
    old_sha = recorded[str(data / "train.jsonl")]
    new_sha = hashlib.sha256((data / "train.jsonl").read_bytes()).hexdigest()
    assert old_sha[:16] in err and new_sha[:16] in err
    assert (out / "metrics.jsonl").read_text() == before  # nothing was changed
    assert json.loads((out / "data_fingerprint.json").read_text())["files"] == recorded

    # the data it started on: the resume continues (step 3 logged after the checkpoint's 2)
    (data / "train.jsonl").write_text(original)
    assert _sft(data, out, "save_steps=1", "resume=true", "max_steps=3") == 0
    assert "starting a fresh run" not in capsys.readouterr().err
    steps = [json.loads(ln).get("step") for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert max(s for s in steps if s is not None) == 3


def test_data_fingerprint_check_names_the_file_and_both_hashes(tmp_path):
    from memrl.train import guards

    f = tmp_path / "train.jsonl"
    f.write_text("a\n")
    run = tmp_path / "run"
    run.mkdir()
    guards.check_data_fingerprint(run, guards.data_fingerprint([f]))  # no record (an older run): not checked
    guards.record_data_fingerprint(run, guards.data_fingerprint([f]), str(tmp_path), "train")
    guards.check_data_fingerprint(run, guards.data_fingerprint([f]))
    was = hashlib.sha256(b"a\n").hexdigest()
    f.write_text("b\n")
    with pytest.raises(guards.DataChangedError) as e:
        guards.check_data_fingerprint(run, guards.data_fingerprint([f]))
    assert str(f) in str(e.value) and was[:16] in str(e.value)
    assert hashlib.sha256(b"b\n").hexdigest()[:16] in str(e.value) and e.value.exit_code == 2
    (run / "data_fingerprint.json").write_text("{")
    with pytest.raises(guards.DataChangedError, match="cannot be read"):
        guards.check_data_fingerprint(run, guards.data_fingerprint([f]))
