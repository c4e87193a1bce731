"""Hardening of `memrl eval`, `memrl eval compare`, `memrl data split-questions` and the released Memory-T1 files.

Every bad input below ends with exit code 2, one line on stderr (`error: ...`), no traceback and nothing
written; the results that used to be silently wrong (duplicate or foreign predictions, seeds that never reached
the policy, comparisons over different questions, zero-width "95% CI"s) are refused or now truthful. The cases are
tables: one row per input, run through `memrl.cli.main` in-process (a non-MemrlError would propagate and fail the
test) and, for a few, as a subprocess (what a user sees on the terminal).
"""

from __future__ import annotations

import copy
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from cli_checks import assert_one_line_error, exit_code, run_cli

from memrl.cli import main as cli_main
from memrl.data.io import DataError, read_conversations
from memrl.dist import ShardError, _Carried, _carrying_user_errors, make_executor

REPO = Path(__file__).resolve().parents[1]
FIX = REPO / "tests" / "fixtures"
RESULTS = FIX / "timedial_results_small.json"
BM25 = FIX / "timedial_bm25_results_small.json"
RANGES = FIX / "timedial_results_time_ranges_small.json"
TIMEDIAL = REPO / "configs" / "eval" / "timedial.yaml"
LOCOMO = REPO / "configs" / "eval" / "locomo.yaml"
CONV26 = REPO / "data" / "locomo" / "conv-26.json"
QUIET = ["progress=false", "bootstrap_samples=0"]


def _refused(capsys, argv: list[str], expect: str, untouched: Path | None = None) -> str:
    """Run the command; assert exit 2, a single `error:` line containing `expect`, nothing at `untouched`."""
    rc, _, err = run_cli(argv, capsys)
    line = assert_one_line_error(rc, err, expect)
    if untouched is not None:
        assert not untouched.exists(), f"{untouched} was written"
    return line


def _records() -> list[dict]:
    return json.loads(RESULTS.read_text(encoding="utf-8"))


def _dump(path: Path, data) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# ---- policy=predictions:FILE: a file that is not the data's predictions ------------------------------------
def _duplicate(recs):
    extra = copy.deepcopy(recs[1])
    extra["question_id"] = "r01"  # r02's prediction filed again under r01: conflicting answers
    return recs + [extra]


def _foreign(recs):
    extra = copy.deepcopy(recs[0])
    extra.update(question_id="zz9", question="A question the data does not hold?")
    return recs + [extra]


def _retexted(recs):
    for r in recs:
        r["question"] = f"Another question {r['question_id']}?"
    return recs


def _renamed(recs):
    for r in recs:
        r["question_id"] = "x" + r["question_id"]
    return recs


def _set(i, **kw):
    def f(recs):
        recs[i].update(kw)
        return recs
    return f


def _drop_outputs(recs):
    del recs[2]["model_output"], recs[2]["parsed_output"]
    return recs


PREDICTIONS = [  # (name, how the file is made, what the one line says)
    ("duplicate id, conflicting answers", lambda p: _dump(p, _duplicate(_records())),
     "record 14 (question_id 'r01'): duplicate question 'r01', first at record 0"),
    ("a question the data lacks", lambda p: _dump(p, _foreign(_records())),
     "record 14 (question_id 'zz9'): no such question in"),
    ("same ids, every question different", lambda p: _dump(p, _retexted(_records())),
     "record 0 (question_id 'r01'): a prediction for another question under the same id"),
    ("ids the data does not have", lambda p: _dump(p, _renamed(_records())),
     "record 0 (question_id 'xr01'): no such question in"),
    ("a subset of the questions", lambda p: _dump(p, _records()[:5]),
     "no prediction for question 'r06'"),
    ("truncated .json", lambda p: p.write_text(json.dumps(_records())[:500]), "the file looks truncated"),
    ("truncated .jsonl", lambda p: p.with_suffix(".jsonl").write_text(
        "\n".join(json.dumps(r) for r in _records())[:900]) and p.with_suffix(".jsonl"), "may be truncated"),
    ("not UTF-8", lambda p: p.write_bytes(b"\xff\xfe" + json.dumps(_records()).encode()), "not UTF-8 text"),
    ("an empty list", lambda p: _dump(p, []), "got an empty list"),
    ("parsed_output a string", lambda p: _dump(p, _set(0, parsed_output="B")(_records())),
     "record 0 (question_id 'r01'): parsed_output: expected dict, got str"),
    ("question_id null", lambda p: _dump(p, _set(0, question_id=None)(_records())),
     "record 0: question_id: expected string, got null"),
    ("neither output key", lambda p: _dump(p, _drop_outputs(_records())),
     "record 2 (question_id 'r03'): neither model_output nor parsed_output"),
    ("the time-range file", lambda p: _dump(p, json.loads(RANGES.read_text())), "this is a time-range file"),
    ("a directory", lambda p: (p.mkdir(), p)[1], "is a directory; name the results file in it"),
]


@pytest.mark.parametrize("name, make, expect", PREDICTIONS, ids=[c[0] for c in PREDICTIONS])
def test_predictions_file_that_is_not_the_datas_is_refused(tmp_path, capsys, name, make, expect):
    made = make(tmp_path / "P.json")
    path = made if isinstance(made, Path) else tmp_path / "P.json"
    out = tmp_path / "out"
    line = _refused(capsys, ["eval", "--config", str(TIMEDIAL), f"data={RESULTS}", f"policy=predictions:{path}",
                             f"out={out}", *QUIET], expect, untouched=out)
    assert path.name in line or "predictions:" in line


def test_predictions_policy_without_a_file(tmp_path, capsys):
    out = tmp_path / "out"
    _refused(capsys, ["eval", "--config", str(TIMEDIAL), f"data={RESULTS}", "policy=predictions:", f"out={out}",
                      *QUIET], "no file named after 'predictions:'; give policy=predictions:FILE", untouched=out)


def test_predictions_matched_by_text_still_score(tmp_path):
    """The BM25 layout has no ids: matched by question text, on a subset of the data's conversations."""
    out = tmp_path / "out"
    assert exit_code(["eval", "--config", str(TIMEDIAL), f"data={RESULTS}", f"policy=predictions:{BM25}",
                 "conversations=[r01,r04,r07]", f"out={out}", *QUIET]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["counts"]["questions"] == 3
    assert res["metrics"]["timedial_official"]["overall"] == pytest.approx(1 / 3)


def test_a_genuine_bug_in_a_shard_still_shows_its_traceback(monkeypatch):
    """Only MemrlErrors cross the shard boundary as one line; anything else is a bug and keeps its traceback."""
    from memrl.eval.predictions import PredictionsAnswerer

    def broken(self, requests):
        raise KeyError("a bug")

    monkeypatch.setattr(PredictionsAnswerer, "answer", broken)
    with pytest.raises(ShardError, match="KeyError") as e:
        cli_main(["eval", "--config", str(TIMEDIAL), f"data={RESULTS}", f"policy=predictions:{RESULTS}", "out=",
                  *QUIET])
    assert isinstance(e.value.__cause__, KeyError)


# ---- the shard boundary ------------------------------------------------------------------------------------
def _user_error(i: int) -> int:
    if i == 1:
        raise DataError("f.json: record 1: bad")
    return i


def _bug(i: int) -> int:
    if i == 1:
        raise ValueError("a bug")
    return i


def test_local_shards_carry_memrl_errors_as_themselves():
    ex = make_executor("local")
    with pytest.raises(DataError, match=r"^f\.json: record 1: bad$"):
        ex.map(_user_error, [0, 1, 2])
    with pytest.raises(ShardError, match="shard 1 failed: ValueError: a bug"):
        ex.map(_bug, [0, 1, 2])


def test_ray_wrapper_returns_user_errors_as_values():
    """What Ray runs: a MemrlError becomes a picklable value (not retried, re-raised by the driver)."""
    run = _carrying_user_errors(_user_error)
    assert run(0) == 0
    carried = run(1)
    assert isinstance(carried, _Carried) and isinstance(carried.error, DataError)
    assert str(carried.error) == "f.json: record 1: bad" and carried.error.exit_code == 2
    with pytest.raises(ValueError):  # a bug is not carried: Ray retries it, then the driver wraps it in ShardError
        _carrying_user_errors(_bug)(1)


@pytest.mark.slow
def test_ray_shards_carry_memrl_errors_as_themselves(ray_executor):
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with pytest.raises(DataError, match=r"^f\.json: record 1: bad$"):
        ray_executor.map(_user_error, [0, 1, 2])
    with pytest.raises(ShardError, match="a bug"):
        ray_executor.map(_bug, [0, 1, 2])


def test_cli_subprocess_prints_one_line(tmp_path):
    bad = _dump(tmp_path / "P.json", _records()[:5])
    p = subprocess.run([sys.executable, "-m", "memrl.cli", "eval", "--config", str(TIMEDIAL), f"data={RESULTS}",
                        f"policy=predictions:{bad}", f"out={tmp_path / 'out'}", *QUIET],
                       capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines() == [p.stderr.strip()] and "no prediction for question 'r06'" in p.stderr
    assert not (tmp_path / "out").exists()


# ---- seeds ---------------------------------------------------------------------------------------------------
def _eval_json(capsys, *args: str) -> dict:
    assert cli_main(["eval", "--json", "--config", str(LOCOMO), f"data={CONV26}", "max_questions=8", *QUIET,
                     *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_every_seed_reaches_a_seeded_policy(capsys, tmp_path):
    res = _eval_json(capsys, "policy=random_pick", "seeds=[0,1,2]", f"out={tmp_path / 'three'}")
    assert res["protocol"]["seeds_run"] == [0, 1, 2] and res["counts"]["records"] == 3 * res["counts"]["questions"]
    picks = {}
    for s in (0, 5):
        out = tmp_path / f"s{s}"
        res = _eval_json(capsys, "policy=random_pick", f"seeds=[{s}]", f"out={out}")
        assert res["protocol"]["seeds_run"] == [s]
        recs = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
        assert {r["seed"] for r in recs} == {s}
        picks[s] = [r["selected_ids"] for r in recs]
    assert picks[0] != picks[5]  # seed 5 is not seed 0 under another name


def test_a_deterministic_policy_says_why_one_seed_ran(capsys):
    res = _eval_json(capsys, "policy=bm25", "seeds=[0,1,2]")
    assert res["protocol"]["seeds_run"] == [0]
    assert any("bm25 is deterministic" in n and "[1, 2]" in n for n in res["protocol"]["notes"])


# ---- bootstrap sample counts -----------------------------------------------------------------------------------
@pytest.mark.parametrize("samples", ["1", "20", "-3"])
def test_too_few_bootstrap_samples_are_refused(tmp_path, capsys, samples):
    out = tmp_path / "out"
    _refused(capsys, ["eval", "--config", str(LOCOMO), f"data={CONV26}", "policy=bm25", "progress=false",
                      f"bootstrap_samples={samples}", f"out={out}"],
             "bootstrap_samples must be 0 (no confidence intervals) or >= 200", untouched=out)


def test_no_bootstrap_means_no_interval(capsys, tmp_path):
    out = tmp_path / "out"
    res = _eval_json(capsys, "policy=bm25", f"out={out}")
    assert res["metrics"]["locomo_f1"]["overall_ci95"] is None
    assert all(c["ci95"] is None for c in res["metrics"]["locomo_f1"]["by_category"].values())
    assert "no confidence intervals (bootstrap_samples=0)" in (out / "report.md").read_text()


def test_enough_bootstrap_samples_give_an_interval_around_the_estimate():
    from memrl.eval.metrics import bootstrap_ci, min_bootstrap_samples

    assert min_bootstrap_samples(0.95) == 200 and min_bootstrap_samples(0.99) == 1000
    values = [0.0, 1.0, 1.0, 0.0, 1.0, 0.5, 0.25, 1.0]
    lo, hi = bootstrap_ci(values, 200, 0.95)
    assert lo < sum(values) / len(values) < hi
    assert bootstrap_ci(values, 0) is None
    with pytest.raises(ValueError, match="too few"):
        bootstrap_ci(values, 1)


# ---- compare -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    for name, args in (("A", ["policy=bm25", "max_questions=10"]), ("A2", ["policy=abstain", "max_questions=10"]),
                       ("B", ["policy=abstain", "max_questions=5"])):
        assert cli_main(["eval", "--config", str(LOCOMO), f"data={CONV26}", *QUIET, *args,
                         f"out={base / name}"]) == 0
    return base


def test_compare_refuses_different_question_sets(runs, capsys, tmp_path):
    out = tmp_path / "cmp.md"
    _refused(capsys, ["eval", "compare", str(runs / "A"), str(runs / "B"), "--out", str(out)],
             "answered 5 questions", untouched=out)
    # without predictions.jsonl the protocols still say so
    nopred = tmp_path / "B"
    nopred.mkdir()
    (nopred / "results.json").write_text((runs / "B" / "results.json").read_text())
    _refused(capsys, ["eval", "compare", str(runs / "A"), str(nopred)], "max_questions_per_conversation 10 vs 5")


@pytest.mark.parametrize("samples", ["1", "50"])
def test_compare_refuses_too_few_samples(runs, capsys, samples):
    _refused(capsys, ["eval", "compare", str(runs / "A"), str(runs / "A2"), "--samples", samples],
             "--samples must be 0 (no confidence intervals) or >= 200")


def test_compare_without_bootstrap_prints_no_interval(runs, capsys):
    assert cli_main(["eval", "compare", str(runs / "A"), str(runs / "A2"), "--samples", "0",
                     "--metric", "locomo_f1"]) == 0
    out = capsys.readouterr().out
    assert "without confidence intervals (--samples 0)" in out
    overall = next(line for line in out.splitlines() if line.startswith("| overall |"))
    assert "[" not in overall  # no "[x, x]" interval


# ---- categories and slices ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("skip, expect", [
    ("[9]", "skip_categories: '9' is not a category of"),
    ("[adversrial]", "'adversrial' is not a category of"),
    ("[1,2,3,4,5]", "leaves no question"),
])
def test_eval_skip_categories_must_exist(tmp_path, capsys, skip, expect):
    out = tmp_path / "out"
    line = _refused(capsys, ["eval", "--config", str(LOCOMO), f"data={CONV26}", "policy=bm25", f"skip_categories={skip}",
                             f"out={out}", *QUIET], expect, untouched=out)
    if "not a category" in expect:
        assert "5 (adversarial)" in line  # names the valid ones


def test_eval_skip_categories_of_the_benchmark_absent_from_the_data_are_accepted(capsys, tmp_path):
    """The demo skips 'adversarial' on a split that has none left: a real category, not a typo."""
    res = _eval_json(capsys, "policy=bm25", "skip_categories=[adversarial,1]")
    assert res["protocol"]["skipped_categories"] == ["adversarial", "1"]


@pytest.fixture(scope="module")
def conv26_jsonl(tmp_path_factory):
    out = tmp_path_factory.mktemp("c26") / "conv26.jsonl"
    assert exit_code(["data", "convert", "--format", "locomo", "--input", str(CONV26), "--output", str(out)]) == 0
    return out


SPLITS = [
    (["--skip-categories", "9"], "--skip-categories: '9' is not a category of"),
    (["--skip-categories", "bogus"], "'bogus' is not a category of"),
    (["--skip-categories", "1,2,3,4,5"], "leaves none of the 199 questions"),
    (["--fractions", "train=0.995,validation=0.005"], "slice 'validation' (0.005) would get none"),
    (["--fractions", "train=0.5,train=0.5"], "slice 'train' is named twice"),
]


@pytest.mark.parametrize("args, expect", SPLITS, ids=[" ".join(a) for a, _ in SPLITS])
def test_split_questions_refuses_before_writing(conv26_jsonl, tmp_path, capsys, args, expect):
    out = tmp_path / "split"
    line = _refused(capsys, ["data", "split-questions", "--input", str(conv26_jsonl), "--output-dir", str(out),
                             *args], expect, untouched=out)
    if "not a category" in expect:
        assert "1 (multi_hop)" in line


def test_split_questions_input_and_output_errors(conv26_jsonl, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    for target in (afile, afile / "sub"):
        _refused(capsys, ["data", "split-questions", "--input", str(conv26_jsonl), "--output-dir", str(target)],
                 f"{afile} is a file, not a directory")
    assert afile.read_text() == "keep me"
    out = tmp_path / "split"
    _refused(capsys, ["data", "split-questions", "--input", str(CONV26), "--output-dir", str(out)],
             "--format locomo", untouched=out)
    conv = json.loads(conv26_jsonl.read_text().splitlines()[0])
    conv["questions"] = []
    empty = tmp_path / "noq.jsonl"
    empty.write_text(json.dumps(conv) + "\n")
    _refused(capsys, ["data", "split-questions", "--input", str(empty), "--output-dir", str(out)],
             "holds no questions", untouched=out)


def test_eval_on_an_empty_file_says_so(tmp_path, capsys):
    empty = tmp_path / "validation.jsonl"
    empty.write_text("")
    _refused(capsys, ["eval", "--config", str(REPO / "configs/eval/synthetic.yaml"), f"data={empty}", "policy=bm25",
                      *QUIET], "holds no conversations: nothing to evaluate")


# ---- released Memory-T1 files (crafted in their layouts) ---------------------------------------------------------
def test_time_ranges_with_list_valued_bounds_are_skipped_not_fatal(tmp_path, capsys, caplog):
    ranges = json.loads(RANGES.read_text())
    ranges["x1"] = {"question": "a", "question_time_range": {"start": ["2021-01-01", "2021-02-01"], "end": "2021"}}
    ranges["x2"] = {"question": "b", "question_time_range": {"start": "unknown", "end": ["2022", "2023"]}}
    f = _dump(tmp_path / "question_time_range_annotated.json", ranges)
    out = tmp_path / "td.jsonl"
    with caplog.at_level(logging.WARNING):
        assert exit_code(["data", "convert", "--format", "timedial_results", "--input", str(RESULTS),
                     "--time-ranges", str(f), "--output", str(out)]) == 0
    assert f"skipped 2 of {len(ranges)} time-range entries" in caplog.text and "'x1'" in caplog.text
    r01 = next(c for c in read_conversations(out) if c.conversation_id == "r01").questions[0]
    assert r01.time_range == ["2021-03-01T00:00:00", "2021-03-31T23:59:59"]  # the readable entries still apply


def _bm25_with_repeated_sessions() -> list[dict]:
    recs = json.loads(BM25.read_text())
    rec = recs[0]
    head, sep, tail = rec["prompt"].partition("***session memory:** \n")
    block = ("2021-03-02T10:00:00: <9>, Ana Lima 2021-03-02T10:00:00 : I booked the pottery class.\n"
             "2021-03-05T09:00:00: <4>, Ben Okafor 2021-03-05T09:00:00 : How is the class?\n"
             "2021-03-02T10:00:00: <9>, Ana Lima 2021-03-02T10:00:00 : I booked the pottery class.\n"
             "Ben Okafor 2021-03-02T10:02:00 : Nice, which day?\n"
             "2021-04-01T08:00:00: <9>, Ana Lima 2021-04-01T08:00:00 : Another day under the same id.\n")
    rec["prompt"] = head + sep + block + tail
    return recs


def test_repeated_session_headers_are_merged_with_a_warning(tmp_path, caplog):
    f = _dump(tmp_path / "bm25_local_infer_results.json", _bm25_with_repeated_sessions())
    out = tmp_path / "bm25.jsonl"
    with caplog.at_level(logging.WARNING):
        assert exit_code(["data", "convert", "--format", "timedial_results", "--input", str(f), "--output", str(out)]) == 0
    assert "1 of 3 prompts repeat a session header" in caplog.text and "<9>" in caplog.text
    assert "record 0 (question \"Which happened first" in caplog.text  # the file's question, not memrl's hash
    conv = read_conversations(out)[0]
    originals = [s.meta["original_session_id"] for s in conv.sessions]
    assert originals.count("session_9") == 1 and "session_9~2" in originals and "session_4" in originals
    nine = next(s for s in conv.sessions if s.meta["original_session_id"] == "session_9")
    assert [t.text for t in nine.turns] == ["I booked the pottery class.", "Nice, which day?"]  # merged, once each
    assert conv.meta["repeated_sessions"] == ["session_9"]


def test_errors_name_the_files_question_not_an_invented_id(tmp_path, capsys):
    recs = json.loads(BM25.read_text())
    recs.append(copy.deepcopy(recs[0]))
    f = _dump(tmp_path / "bm25.json", recs)
    line = _refused(capsys, ["data", "convert", "--format", "timedial_results", "--input", str(f), "--output",
                             str(tmp_path / "x.jsonl")], "duplicate question (same question text), first at record 0",
                    untouched=tmp_path / "x.jsonl")
    assert 'record 3 (question "Which happened first' in line and "'q" not in line


@pytest.mark.parametrize("text", ["{", "[]", '{"r": 8}'])
def test_a_broken_adapter_config_is_one_line_before_any_model_loads(tmp_path, text):
    """A policy / init_from directory whose adapter_config.json is truncated, not an object, or names no base model
    is refused while resolving the spec, naming the file (it used to surface as a traceback from an eval shard)."""
    from memrl.config import ConfigError
    from memrl.eval import EvalConfig
    from memrl.eval.policies import policy_ref

    (tmp_path / "adapter_config.json").write_text(text)
    with pytest.raises(ConfigError, match="adapter_config.json"):
        policy_ref(str(tmp_path), "answerer", EvalConfig(), what="init_from")
