"""TIME-Dial fidelity (issue 19): Memory-T1's published scoring (`timedial_official`) beside memrl's corrected
`timedial_acc`, the released result files as data, and `policy=predictions:FILE`.

Fixtures (written here in the released layouts, not copied from the released files):
- timedial_results_small.json: 14 records in the full-prompt results layout (question_id, question with options,
  level, task, prompt, model_output, parsed_output, gold_answer), one per rule difference;
- timedial_bm25_results_small.json: 3 records in the BM25 layout (no question_id/task/level,
  bm25_top5_session_ids), the questions of r01, r04 and r07 with other predictions;
- timedial_results_time_ranges_small.json: the time-range layout (question id -> question, question_time_range
  {start, end}, reasoning, events).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from memrl.cli import main as cli_main
from memrl.config import ConfigError
from memrl.data.io import DataError, read_conversations
from memrl.data.loaders import load, load_timedial
from memrl.data.loaders.timedial_results import load_timedial_results
from memrl.eval.predictions import PredictionsAnswerer, interpret
from memrl.eval import EvalConfig, evaluate
from memrl.rewards.accuracy import accuracy, timedial_accuracy
from memrl.rewards.timedial_official import (
    official_answer,
    official_extract,
    official_parse,
    timedial_official,
)

REPO = Path(__file__).resolve().parents[1]
FIX = REPO / "tests" / "fixtures"
RESULTS = FIX / "timedial_results_small.json"
BM25 = FIX / "timedial_bm25_results_small.json"
RANGES = FIX / "timedial_results_time_ranges_small.json"
CONFIG = REPO / "configs" / "eval" / "timedial.yaml"
FAST = {"benchmark": "timedial", "answer_mode": "memory_t1", "candidates": "sessions", "category_key": "category",
        "also_by": ["level"], "exclude_from_overall": [], "adversarial_categories": [], "progress": False,
        "bootstrap_samples": 0, "metrics": ["timedial_acc", "timedial_official", "em"]}


def corrected(pred, gold, task):
    return max(0.0, timedial_accuracy(pred, gold, task))


# ---- rule differences: one test per line of docs/EVALUATION.md's table ------------------------------------------
@pytest.mark.parametrize("pred, gold", [("B A", "B"), ("A B D", "A"), ("D There is no answer", "D"),
                                        ("B. The trip", "B"), ("C)", "C")])
def test_first_letter_truncation(pred, gold):
    assert timedial_official(pred, gold, "Order_Compare") == 1.0
    assert corrected(pred, gold, "Order_Compare") == 0.0


def test_first_letter_needs_a_separator():
    assert official_extract("Bob") == "Bob"  # no ".", ")" or space after the capital: not an option letter
    assert timedial_official("Bob", "B", "Explicit_Reasoning") == 0.0
    assert official_extract("b") == "b" and timedial_official("b", "B", "Explicit_Reasoning") == 0.0


def test_extract_multi_letter_gold_never_matches_officially():
    for pred in ("B C", "C B", "B  C", "B"):
        assert timedial_official(pred, "B  C", "Extract") == 0.0
    assert corrected("C B", "B  C", "Extract") == 1.0
    assert corrected("B", "B  C", "Extract") == 0.0
    # a single-letter Extract gold still matches
    assert timedial_official("A", "A", "Extract") == 1.0


def test_computation_multi_part_gold_never_matches_officially():
    assert timedial_official("3 months 8 days", "3 months 8 days", "Computation") == 0.0
    assert corrected("3 months 8 days", "3 months 8 days", "Computation") == 1.0
    assert corrected("3 months 9 days", "3 months 8 days", "Computation") == 1.0
    # single "N unit" phrases: within one day on both
    assert timedial_official("23 days", "22 days", "Computation") == 1.0
    assert timedial_official("24 days", "22 days", "Computation") == 0.0
    assert timedial_official("1 year", "365 days", "Computation") == 1.0
    assert timedial_official("", "22 days", "Computation") == 0.0


def test_computation_weeks_are_zero_days_officially():
    # Memory-T1's unit map has no week: every "N weeks" is 0 days and matches every other.
    assert timedial_official("5 weeks", "3 weeks", "Computation") == 1.0
    assert corrected("5 weeks", "3 weeks", "Computation") == 0.0


def test_timeline_all_or_nothing_vs_partial():
    gold = "(1)(2)(3)(4)"
    assert timedial_official("(1)(3)(2)(4)", gold, "Timeline") == 0.0
    assert corrected("(1)(3)(2)(4)", gold, "Timeline") == pytest.approx(0.5)
    assert timedial_official("(1)", gold, "Timeline") == 0.0
    assert corrected("(1)", gold, "Timeline") == pytest.approx(0.25)
    assert timedial_official(gold, gold, "Timeline") == corrected(gold, gold, "Timeline") == 1.0
    # theirs splits on ")(" with optional whitespace, and full-width parentheses
    assert timedial_official("(1) (2)(3)(4)", gold, "Timeline") == 1.0
    assert timedial_official("（1）（2）（3）（4）", "（1）（2）（3）（4）", "Timeline") == 1.0
    assert timedial_official("1 2 3 4", gold, "Timeline") == 0.0


def test_localization_one_day_vs_graded_thirty_days():
    gold = "July 27, 2022"
    assert timedial_official("July 28, 2022", gold, "Localization") == 1.0
    assert corrected("July 28, 2022", gold, "Localization") == pytest.approx(0.9)
    assert timedial_official("July 30, 2022", gold, "Localization") == 0.0
    assert corrected("July 30, 2022", gold, "Localization") == pytest.approx(0.7)
    assert timedial_official("August 20, 2022", gold, "Localization") == 0.0
    assert corrected("August 20, 2022", gold, "Localization") == pytest.approx(0.16)  # 24 days: .5 - .02 * 17
    # a time of day within 24 h of the gold's midnight, ISO with T, and an unparsable answer
    assert timedial_official("January 15, 2024", "10:45:41 pm, January 15, 2024", "Localization") == 1.0
    assert timedial_official("2022-07-27T13:00:00", gold, "Localization") == 1.0
    assert timedial_official("no idea", gold, "Localization") == 0.0
    assert timedial_official("", gold, "Localization") == 0.0


def test_localization_month_only_gold_depends_on_today():
    # dateutil fills the missing day from today: the official verdict moves with the calendar, memrl's does not.
    pred, gold = "May 20, 2023", "May, 2023"
    assert timedial_official(pred, gold, "Localization", today=datetime(2026, 12, 20)) == 1.0
    assert timedial_official(pred, gold, "Localization", today=datetime(2026, 12, 5)) == 0.0
    assert corrected(pred, gold, "Localization") == 1.0


def test_set_rule_and_date_normalization():
    assert timedial_official("B", "B", "Duration_Compare") == 1.0
    assert timedial_official("C", "B", "Duration_Compare") == 0.0
    assert timedial_official("", "", "Unknown") == 1.0  # set() == set(), as theirs
    # normalize_date runs on both sides before every rule
    assert timedial_official("2022-07-27", "July 27, 2022", "Unknown") == 1.0
    assert corrected("2022-07-27", "July 27, 2022", "Unknown") == 0.0
    assert official_extract("2022-07-27T10:00:00") == "2022-07-27"
    # tasks are matched case-sensitively, as theirs: "timeline" falls to the set rule (order-insensitive)
    assert timedial_official("(2)(1)", "(1)(2)", "timeline") == 1.0
    assert corrected("(2)(1)", "(1)(2)", "timeline") == 0.0
    assert accuracy("B A", "B", "timedial_official", task="Order_Compare") == 1.0


def test_official_parse_and_answer():
    fenced = '```json\n{"selected_memory": ["<session_1>"], "answer": "B"}\n```'
    assert official_parse(fenced) == {"selected_memory": ["<session_1>"], "answer": "B"}
    assert official_parse('{"answer": "C",}') == {}  # trailing comma: their json.loads fails
    assert official_parse('Answer {"answer": "C"} and {x}') == {}  # greedy first "{" to last "}"
    assert official_parse("no json here") == {} and official_parse(None) == {}
    assert official_answer({}) == "" and official_answer(None) == ""
    assert official_answer({"answer": 3}) == "3" and official_answer({"answer": ["A", "B"]}) == ""


# ---- the released layouts as data --------------------------------------------------------------------------------
def test_results_file_autodetected_and_prediction_kept():
    convs = {c.conversation_id: c for c in load_timedial(RESULTS, time_ranges=RANGES)}
    assert len(convs) == 14
    r01 = convs["r01"]
    q = r01.questions[0]
    assert (q.category, q.category_id, q.answer) == ("Order_Compare", "Level 1", "B")
    assert list(q.options) == ["A", "B", "C"]
    assert [s.timestamp for s in r01.sessions] == ["2021-03-02T10:00:00", "2021-03-20T18:30:00"]
    assert [t.speaker for _, t in r01.turns()] == ["Ana Lima", "Ben Okafor", "Ana Lima"]
    assert q.time_range == ["2021-03-01T00:00:00", "2021-03-31T23:59:59"]
    assert interpret(q.meta["prediction"])["official_answer"] == "B A" and interpret(q.meta["prediction"])["answer"] == "B A"
    r04 = convs["r04"].questions[0]
    assert r04.meta["prediction"]["parsed_output"] == {} and interpret(r04.meta["prediction"])["official_answer"] == ""
    assert interpret(r04.meta["prediction"])["answer"] == "C"  # memrl's lenient parse recovers the trailing comma
    assert r04.time_range == [None, "2021-06-30T23:59:59"]
    assert interpret(convs["r13"].questions[0].meta["prediction"])["answer"] is None
    assert convs["r07"].questions[0].meta["answer_format"] == "duration"


def test_bm25_layout_matches_time_ranges_by_question_text():
    convs = load("timedial_results", BM25, time_ranges=RANGES)
    assert len(convs) == 3
    q = convs[0].questions[0]
    assert convs[0].conversation_id.startswith("q") and q.category == "Unknown" and q.category_id is None
    assert q.time_range == ["2021-03-01T00:00:00", "2021-03-31T23:59:59"]
    assert q.meta["bm25_ranked_session_ids"][:2] == ["7", "3"]


def test_convert_cli(tmp_path, capsys):
    out = tmp_path / "td.jsonl"
    assert cli_main(["data", "convert", "--format", "timedial_results", "--input", str(RESULTS),
                     "--time-ranges", str(RANGES), "--output", str(out)]) == 0
    back = {c.conversation_id: c for c in read_conversations(out)}
    assert len(back) == 14 and interpret(back["r03"].questions[0].meta["prediction"])["official_answer"] == "D There is no answer"
    # --format timedial detects the results layout too
    out2 = tmp_path / "td2.jsonl"
    assert cli_main(["data", "convert", "--format", "timedial", "--input", str(RESULTS), "--output", str(out2)]) == 0
    assert len(read_conversations(out2)) == 14
    capsys.readouterr()
    # the time-range file given as input: one line that says what it is
    with pytest.raises(SystemExit) as e:
        cli_main(["data", "convert", "--format", "timedial", "--input", str(RANGES), "--output", str(tmp_path / "x.jsonl")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "timedial_results_time_ranges_small.json" in err and "--time-ranges" in err and err.count("\n") == 1


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.pop("gold_answer"), r"record 2 \(question_id 'r03'\): gold_answer: missing key"),
    (lambda r: r.update(parsed_output=["A"]), r"record 2 \(question_id 'r03'\): parsed_output: expected dict"),
    (lambda r: r.update(question_id=True), r"record 2: question_id: expected string"),
    (lambda r: r.update(question_id="r01"), r"record 2 \(question_id 'r01'\): duplicate question 'r01'"),
    (lambda r: r.update(model_output=7), r"model_output: expected str"),
])
def test_malformed_results_name_file_and_record(tmp_path, mutate, message):
    recs = json.loads(RESULTS.read_text())
    mutate(recs[2])
    bad = tmp_path / "bad_results.json"
    bad.write_text(json.dumps(recs))
    with pytest.raises(DataError, match=message) as e:
        load_timedial_results(bad)
    assert str(e.value).startswith(str(bad)) and "\n" not in str(e.value)


def test_malformed_time_ranges(tmp_path):
    bad = tmp_path / "ranges.json"
    bad.write_text(json.dumps({"r01": {"question": "x", "question_time_range": ["2021", "2022"]}}))
    with pytest.raises(DataError, match=r"ranges.json: no entry has a readable time range \(question 'r01': "
                                        r"question_time_range"):
        load_timedial_results(RESULTS, time_ranges=bad)
    bad.write_text(json.dumps([1, 2]))
    with pytest.raises(DataError, match=r"ranges.json: a time-range file must be a JSON object"):
        load_timedial_results(RESULTS, time_ranges=bad)
    with pytest.raises(DataError, match="--contexts does not apply"):
        load_timedial_results(RESULTS, contexts=RANGES)


# ---- scoring a released predictions file ---------------------------------------------------------------------------
EXPECTED_OFFICIAL = {"Order_Compare": 1.0, "Explicit_Reasoning": 1.0, "Counterfactual": 1.0, "Duration_Compare": 0.0,
                     "Timeline": 0.5, "Computation": 0.5, "Extract": 0.0, "Localization": 0.5,
                     "Relative_Reasoning": 1.0, "Order_Reasoning": 0.0, "Co_temporality": 0.0}
EXPECTED_CORRECTED = {"Order_Compare": 0.0, "Explicit_Reasoning": 0.0, "Counterfactual": 0.0, "Duration_Compare": 1.0,
                      "Timeline": 0.75, "Computation": 1.0, "Extract": 1.0, "Localization": 0.85,
                      "Relative_Reasoning": 1.0, "Order_Reasoning": 0.0, "Co_temporality": 0.0}


def test_predictions_policy_cli_writes_both_metrics(tmp_path):
    out = tmp_path / "run"
    assert cli_main(["eval", "--config", str(CONFIG), f"data={RESULTS}", f"policy=predictions:{RESULTS}",
                     f"data_options={{time_ranges: {RANGES}}}", f"out={out}", "progress=false",
                     "bootstrap_samples=0"]) == 0
    res = json.loads((out / "results.json").read_text())
    m = res["metrics"]
    assert m["timedial_official"]["overall"] == pytest.approx(7 / 14)
    assert m["timedial_acc"]["overall"] == pytest.approx(8.2 / 14)
    assert m["timedial_official"]["by_level"]["Level 3"]["mean"] == pytest.approx(2 / 4)
    for task, v in EXPECTED_OFFICIAL.items():
        assert m["timedial_official"]["by_category"][task]["mean"] == pytest.approx(v), task
        assert m["timedial_acc"]["by_category"][task]["mean"] == pytest.approx(EXPECTED_CORRECTED[task]), task
    assert res["protocol"]["answerer"]["name"] == "predictions:timedial_results_small.json"
    assert "timedial_official" in res["protocol"]["metric_definitions"]
    report = (out / "report.md").read_text()
    assert "timedial_official" in report and "timedial_acc" in report


def test_bm25_predictions_scored_with_the_data_tasks(tmp_path):
    convs = load_timedial(RESULTS)
    cfg = EvalConfig(**FAST, conversations=["r01", "r04", "r07"])
    res = evaluate(convs, f"predictions:{BM25}", config=cfg)
    by = res["metrics"]["timedial_official"]["by_category"]
    # r01 "B" = gold; r04 "A" != "C"; r07 "3 months" vs the two-part gold "3 months 8 days"
    assert by["Order_Compare"]["mean"] == 1.0 and by["Duration_Compare"]["mean"] == 0.0
    assert by["Computation"]["mean"] == 0.0
    # a question the predictions file lacks: one line naming the file and the question
    with pytest.raises(Exception, match=r"timedial_bm25_results_small.json: no prediction for question 'r02'"):
        evaluate(convs, f"predictions:{BM25}", config=EvalConfig(**FAST, conversations=["r02"]))


def test_predictions_policy_errors(tmp_path):
    convs = load_timedial(RESULTS)
    with pytest.raises(ConfigError, match="no such predictions file"):
        evaluate(convs, f"predictions:{tmp_path / 'nope.json'}", config=EvalConfig(**FAST))
    with pytest.raises(ConfigError, match="not a manager"):
        evaluate(convs, "bm25", manager=f"predictions:{RESULTS}", config=EvalConfig(**FAST))


def test_predictions_answerer_falls_back_to_released_parse():
    pol = PredictionsAnswerer(RESULTS)
    q = SimpleNamespace(question_id="r13", question="?")
    (p,) = pol.answer([SimpleNamespace(question=q)])
    assert p.ok is False and p.official_answer == ""  # neither parse found an answer
    q = SimpleNamespace(question_id="zz", question=json.loads(RESULTS.read_text())[0]["question"])
    (p,) = pol.answer([SimpleNamespace(question=q)])  # matched by question text
    assert p.answer == "B A" and p.official_answer == "B A"


def test_llm_answerer_records_the_official_parse():
    from memrl.policies.llm import LLMAnswerer

    ans = LLMAnswerer.__new__(LLMAnswerer)
    ans.answer_mode = "memory_t1"
    outputs = ['{"selected_memory": ["<session_1>"], "answer": "C",}', '```json\n{"answer": "B A"}\n```']
    ans.generate = lambda requests, sampling=None: [[SimpleNamespace(text=t)] for t in outputs]
    p1, p2 = ans.answer([None, None])
    assert (p1.answer, p1.official_answer) == ("C", "")
    assert (p2.answer, p2.official_answer) == ("B A", "B A")
