"""Training, synthesis, evaluation and demo runs refuse what would give a wrong result: PPO keys that had no
effect, a resume onto changed data, two runs in one directory, a demo that evaluates on its training split or
fails only after its training stages."""

from __future__ import annotations

import hashlib
import os
import json
from pathlib import Path

import pytest
from cli_checks import run_cli

ROOT = Path(__file__).resolve().parents[1]


# ---- one source of truth for PPO's shared settings ----------------------------------------------------------
@pytest.mark.parametrize("key,governing", [("ppo.batch_size=3", "batch_size"), ("ppo.total_iterations=7", "max_steps"),
                                           ("ppo.temperature=0.5", "temperature"),
                                           ("ppo.max_new_tokens=9", "max_completion_length"), ("ppo.seed=4", "seed"),
                                           ("ppo.save_every=2", "save_steps"), ("ppo.log_every=2", "logging_steps")])
def test_ppo_keys_that_the_top_level_governs_are_refused_naming_both(key, governing, capsys):
    rc, out, err = run_cli(["train", "--config", ROOT / "configs/train/ppo_manager_tiny.yaml", key, "--dry-run"], capsys)
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
    from memrl.train.algorithms.ppo import ppo_config
    from memrl.train.config import TrainConfig

    cfg = load_config(TrainConfig, ROOT / "configs/train/ppo_manager_tiny.yaml",
                      ["batch_size=3", "max_steps=7", "temperature=0.5", "seed=5", "save_steps=2", "logging_steps=3",
                       "max_completion_length=11", "ppo.kl_coef=0.2"])
    p = ppo_config(cfg)
    assert (p.batch_size, p.total_iterations, p.temperature, p.seed, p.save_every, p.log_every, p.max_new_tokens,
            p.kl_coef) == (3, 7, 0.5, 5, 2, 3, 11, 0.2)


def test_outcome_demo_ppo_stage_sets_only_ppo_own_keys(tmp_path):
    from memrl.demo.outcome import OutcomeDemoConfig, train_config
    from memrl.train.algorithms.ppo import ppo_config

    cfg = OutcomeDemoConfig(ppo_iterations=3, batch_size=6, num_generations=2, max_new_tokens=7)
    p = ppo_config(train_config(cfg, "ppo", 4, tmp_path / "r"))
    # GRPO's shape: num_generations samples per prompt, one prompt group per minibatch
    assert (p.total_iterations, p.batch_size, p.max_new_tokens, p.seed, p.minibatch_size, p.samples_per_prompt) \
        == (3, 6, 7, 4, 2, 2)


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


# ---- one command per output directory -----------------------------------------------------------------------
HOLDER = """
import sys
from memrl.locks import hold_directory
with hold_directory(sys.argv[1], "memrl train"):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def held_dir(tmp_path):
    """(directory, pid): another process holds the directory's lock until the test ends."""
    import subprocess
    import sys

    d = tmp_path / "busy"
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(d)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True, cwd=ROOT)
    try:
        assert p.stdout.readline().strip() == "held"
        yield d, p.pid
    finally:
        p.stdin.close()
        p.wait(timeout=60)


def test_every_writing_command_is_refused_on_a_directory_another_process_holds(held_dir, synth_dir, capsys):
    d, pid = held_dir
    commands = [
        ["synth", f"out={d}", "num_conversations=2"],
        ["train", "--config", ROOT / "configs/train/sft_manager_tiny.yaml", f"data.path={synth_dir}", f"output_dir={d}",
         "max_steps=1"],
        ["eval", "--config", ROOT / "configs/eval/synthetic.yaml", f"data={synth_dir / 'validation.jsonl'}",
         "policy=bm25", f"out={d}", "progress=false"],
        ["demo", "--config", ROOT / "configs/demo/oracle_tiny.yaml", f"out={d}"],
    ]
    for argv in commands:
        rc, out, err = run_cli(argv, capsys)
        assert rc == 2, (argv[0], err)
        assert err.count("\n") == 1 and f"pid {pid}, memrl train" in err and str(d) in err, (argv[0], err)
        assert not d.exists(), argv[0]  # nothing was written


def test_the_lock_survives_the_directory_being_replaced_and_is_released_after_the_command(tmp_path):
    import subprocess
    import sys

    from memrl.locks import DirectoryBusyError, hold_directory, lock_path

    d = tmp_path / "run"
    try_lock = ("import sys\nfrom memrl.locks import hold_directory, DirectoryBusyError\n"
                "try:\n    with hold_directory(sys.argv[1], 'memrl synth'): print('got')\n"
                "except DirectoryBusyError as e: print(e)\n")

    def other_process() -> str:
        return subprocess.run([sys.executable, "-c", try_lock, str(d)], capture_output=True, text=True, cwd=ROOT,
                              timeout=60).stdout.strip()

    with hold_directory(d, "memrl train"):
        d.mkdir()
        d.rename(tmp_path / "aside")  # what overwrite=true does to the old run
        d.mkdir()
        with hold_directory(d, "memrl train"):  # the same process may nest
            pass
        assert f"pid {os.getpid()}, memrl train" in other_process()
        assert lock_path(d).parent == tmp_path
    assert other_process() == "got"
    assert not lock_path(d).with_name(lock_path(d).name + ".pid").exists()
    with pytest.raises(DirectoryBusyError):
        with hold_directory(d, "a"):
            subprocess.run([sys.executable, "-c", "raise SystemExit"], check=True)
            raise DirectoryBusyError("raised inside: the lock is still released")
    assert other_process() == "got"


@pytest.mark.slow
def test_two_syntheses_into_one_directory_at_once_one_is_refused(tmp_path):
    """Both started together: before, one ended in a traceback on the manifest rename (or both mixed shards)."""
    import subprocess
    import sys

    out = tmp_path / "synth"
    argv = [sys.executable, "-m", "memrl.cli", "synth", f"out={out}", "num_conversations=300", "shard_size=10"]
    procs = [subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert sorted(rc for rc, _ in results) == [0, 2], results
    refused = next(err for rc, err in results if rc == 2)
    winner = next(p.pid for p, (rc, _) in zip(procs, results) if rc == 0)
    assert "Traceback" not in refused and refused.strip().count("\n") == 0
    assert f"in use by another memrl command (pid {winner}, memrl synth)" in refused
    assert sum(1 for _ in open(out / "train.jsonl")) + sum(1 for _ in open(out / "validation.jsonl")) + \
        sum(1 for _ in open(out / "test.jsonl")) == 300


# ---- the outcome demo: refuse at once what would fail later or mislead ----------------------------------------
@pytest.fixture
def no_expensive_steps(monkeypatch):
    """The demo's synthesis, training and evaluation fail the test if reached."""
    import memrl.demo.outcome as outcome

    def reached(*a, **k):
        raise AssertionError("an expensive step ran before the refusal")

    for name in ("train", "run_eval", "run_synthesis"):
        monkeypatch.setattr(outcome, name, reached)


@pytest.mark.parametrize("bad,expected", [
    (["train_split=validation", "eval_split=validation"], "train_split and eval_split are both 'validation'"),
    (["baselines=[bm25,nope]"], "baselines=nope: no such checkpoint directory"),
    (["baselines=[bm25,bm25]"], "'bm25' is listed twice"),
    (["baselines=[bm25_verbatim,grpo_s0]"], "baselines=grpo_s0"),
    (["num_conversations=5"], "num_conversations=5 leaves the 'validation' split empty"),
    (["eval_split=dev"], "eval_split=dev: synthesized data has the splits"),
    (["model=/nonexistent/model"], "model=/nonexistent/model"),
    (["algos=[grpo,sft]"], "algos"),
    (["data=nowhere/conv.json", "benchmark=locomo"], "data: nowhere/conv.json does not exist"),
    (["data=data/locomo/conv-26.json"], "is a LoCoMo file: evaluate it with benchmark=locomo"),
    (["data=data/locomo/conv-26.json", "benchmark=locomo", "split_fractions=[0.5,0.2]"], "split_fractions"),
    (["data=data/locomo/conv-26.json", "benchmark=locomo", "split_fractions=[0.999,0.001]"], "would get none"),
])
def test_demo_refuses_bad_input_before_its_first_expensive_step(bad, expected, tmp_path, tiny_model_dir,
                                                               no_expensive_steps, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)  # data/locomo/conv-26.json
    out = tmp_path / "demo"
    synthetic = ["data=", "benchmark=synthetic", "warm_start_conversations=0"]  # the cases below override these
    rc, stdout, err = run_cli(["demo", f"out={out}", f"model={tiny_model_dir}", *synthetic, *bad], capsys)
    assert rc == 2 and expected in err and err.count("\n") == 1, err
    assert not out.exists()


def test_demo_checks_given_data_files_and_stage_labels(tmp_path, synth_dir, tiny_model_dir, no_expensive_steps, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(synth_dir, data)
    (data / "validation.jsonl").unlink()
    synthetic = ["benchmark=synthetic", "warm_start_conversations=0"]
    rc, _, err = run_cli(["demo", f"out={tmp_path / 'o'}", f"model={tiny_model_dir}", f"data={data}", *synthetic], capsys)
    assert rc == 2 and f"{data / 'validation.jsonl'} does not exist" in err
    (data / "validation.jsonl").write_text("")
    rc, _, err = run_cli(["demo", f"out={tmp_path / 'o'}", f"model={tiny_model_dir}", f"data={data}", *synthetic], capsys)
    assert rc == 2 and "holds no conversation" in err and not (tmp_path / "o").exists()


def test_demo_refuses_an_eval_split_that_repeats_training_questions(tmp_path, synth_dir, tiny_model_dir,
                                                                     no_expensive_steps, capsys):
    """A data=<dir> whose validation.jsonl repeats train questions (by id, or the same text under a new id) would
    report F1 on trained questions as held out: refused, unless allow_eval_overlap names it a fit diagnostic."""
    import json
    import shutil

    from memrl.demo.outcome import OutcomeDemoConfig, _report, check_outcome_demo

    data = tmp_path / "data"
    shutil.copytree(synth_dir, data)
    first = json.loads((data / "train.jsonl").read_text().splitlines()[0])
    for q in first["questions"]:  # a copy under new ids still leaks its answers
        q["question_id"] = "copy:" + q["question_id"]
    clean = (data / "validation.jsonl").read_text()
    (data / "validation.jsonl").write_text(clean + json.dumps(first) + "\n")
    args = ["demo", f"out={tmp_path / 'o'}", f"model={tiny_model_dir}", f"data={data}", "benchmark=synthetic",
            "warm_start_conversations=0"]
    rc, _, err = run_cli(args, capsys)
    n = len(first["questions"])
    assert rc == 2 and f"{n} question(s) of validation.jsonl are also in train.jsonl" in err
    assert "allow_eval_overlap=true" in err and err.count("\n") == 1 and not (tmp_path / "o").exists()
    cfg = OutcomeDemoConfig(out=str(tmp_path / "o"), model=str(tiny_model_dir), data=str(data), benchmark="synthetic",
                            warm_start_conversations=0, allow_eval_overlap=True)
    assert len(check_outcome_demo(cfg)) == n  # allowed: checked, the shared questions returned for the summary
    (data / "validation.jsonl").write_text(clean)  # disjoint again: passes without the switch
    check_outcome_demo(OutcomeDemoConfig(out=str(tmp_path / "o"), model=str(tiny_model_dir), data=str(data),
                                         benchmark="synthetic", warm_start_conversations=0))
    s = {"wall_seconds": 1.0, "policies": [], "diff_vs_start_by_algo": {}, "eval_questions_seen_in_training": n}
    assert f"Fit diagnostic, not a held-out result: {n} of the evaluated questions were trained on" in _report(cfg, s, "")
    assert "Fit diagnostic" not in _report(cfg, {**s, "eval_questions_seen_in_training": 0}, "")


def test_demo_report_names_only_the_algorithms_it_ran():
    from memrl.demo.outcome import OutcomeDemoConfig, _report

    s = {"wall_seconds": 1.0, "policies": [], "diff_vs_start_by_algo": {}}
    grpo_only = _report(OutcomeDemoConfig(algos=["grpo"], shuffled_control=False, grpo_steps=5), s, "")
    assert "GRPO 5 steps" in grpo_only and "PPO" not in grpo_only and "grpo_shuffled" not in grpo_only
    ppo_only = _report(OutcomeDemoConfig(algos=["ppo"], shuffled_control=False, ppo_iterations=2), s, "")
    assert "PPO 2 iterations" in ppo_only and "GRPO" not in ppo_only
    both = _report(OutcomeDemoConfig(algos=["grpo", "ppo"], grpo_steps=5, ppo_iterations=2), s, "")
    assert "GRPO 5 steps, PPO 2 iterations" in both and "grpo_shuffled" in both
