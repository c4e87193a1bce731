"""Bad input to `memrl train | synth | bench` ends in one line naming the file or key, never a traceback and never
a model-hub download (docs/HARDENING.md lists every case)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from memrl.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bad_models(tiny_model_dir, tmp_path_factory):
    """Model directories damaged in the ways users damage them."""
    root = tmp_path_factory.mktemp("bad_models")

    def copy(name):
        d = root / name
        shutil.copytree(tiny_model_dir, d)
        return d

    garbage = copy("garbage")
    (garbage / "model.safetensors").write_bytes(b"not a safetensors file")
    truncated = copy("truncated")
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    pickled = copy("pickle_only")
    (pickled / "model.safetensors").unlink()
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    no_tok = copy("no_tokenizer")
    for f in no_tok.glob("tokenizer*"):
        f.unlink()
    no_type = copy("no_model_type")
    (no_type / "config.json").write_text("{}")
    return {"garbage": garbage, "truncated": truncated, "pickle_only": pickled, "no_tokenizer": no_tok,
            "no_model_type": no_type}


@pytest.mark.parametrize("case,override,message", [
    ("garbage", "init_from={garbage}", "model.safetensors: not a readable safetensors file"),
    ("truncated", "init_from={truncated}", "model.safetensors: not a readable safetensors file"),
    ("pickle_only", "init_from={pickle_only}", "pickle files only (pytorch_model.bin)"),
    ("no_tokenizer", "init_from={no_tokenizer}", "no tokenizer files"),
    ("no_model_type", "init_from={no_model_type}", "no `model_type` key"),
    ("missing", "init_from=runs/nope/final_model", "init_from 'runs/nope/final_model': no such directory"),
    ("typo_teacher", "teacher=foo", "'foo' is neither a manager baseline"),
])
def test_bad_model_directories_fail_at_once_in_one_line(case, override, message, bad_models, synth_dir, tmp_path,
                                                         capsys):
    rc = main(["train", "--config", str(ROOT / "configs/train/sft_manager_tiny.yaml"), f"data.path={synth_dir}",
               f"output_dir={tmp_path / 'run'}", "max_steps=1", override.format(**bad_models)])
    err = capsys.readouterr().err
    assert rc != 0 and message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_empty_override_is_the_empty_string(tmp_path):
    from memrl.config import ConfigError, load_config
    from memrl.train.config import TrainConfig

    # `init_from=''` in a shell arrives as `init_from=`: it means "no init_from", not null.
    assert load_config(TrainConfig, ROOT / "configs/train/grpo_manager_tiny.yaml", ["init_from="]).init_from == ""
    with pytest.raises(ConfigError, match="max_steps.*expected int"):
        load_config(TrainConfig, None, ["max_steps="])


def test_bench_rejects_negative_threads(capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "--threads", "-3"])
    assert e.value.code == 2 and "--threads: must be >= 0" in capsys.readouterr().err


def test_synth_bounds_num_conversations(tmp_path, capsys):
    rc = main(["synth", "--config", str(ROOT / "configs/synth/default.yaml"), f"out={tmp_path / 's'}",
               "num_conversations=1000000000"])
    assert rc == 2 and "num_conversations must be <= 10,000,000" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_run_directory_readme_and_model_card_metadata(synth_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--config", str(ROOT / "configs/train/sft_manager_tiny.yaml"), f"data.path={synth_dir}",
                 f"output_dir={out}", "max_steps=2", "batch_size=2"]) == 0
    stdout = capsys.readouterr().out
    assert "{'loss'" not in stdout  # transformers' per-step metric dicts stay out of the console
    readme = (out / "README.md").read_text()
    assert readme.startswith("# memrl run: sft manager") and "fine-tuned version of" not in readme
    card = (out / "final_model" / "README.md").read_text()
    assert "license: apache-2.0" in card and f'base_model: "{out / "base_model"}"' in card
