"""Reward library: LoCoMo official-F1 parity on conv-26, Memory-T1 and Context-Picker hand-worked cases,
the write-side temporal term, composites, TRL adapters, and property tests (no raise, documented ranges)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memrl.data.schema import ABSTAIN_ANSWER, GoldOp
from memrl.memory.ops import ApplyResult, Op, RejectedOp
from memrl.protocol.modes import parse_answer_output
from memrl.rewards import (
    MEMORY_T1_UNKNOWN_DEFAULTS,
    CompositeReward,
    RewardResult,
    accuracy,
    amem_f1,
    bleu1,
    compression_reward,
    context_picker_reward,
    event_fidelity,
    exact_match,
    format_reward,
    id_prf,
    interval_relation,
    invalid_op_penalty,
    judge_scores,
    length_cost,
    locomo_f1,
    memory_r1_answer_reward,
    memory_t1_reward,
    parse_date_span,
    picker_coverage_reward,
    redundancy_cost,
    session_proximity,
    set_match,
    temporal_consistency,
    text_match_score,
    timedial_accuracy,
    token_f1,
    write_temporal_reward,
)
from memrl.rewards.accuracy import _word_tokenize
from memrl.rewards.trl_adapters import completion_text, make_answer_reward

# ---- LoCoMo official F1 parity (snap-research/LoCoMo task_eval/evaluation.py) ----------------------------------------


def _conv26_scores(conv26_path, predict):
    with open(conv26_path) as f:
        qa = json.load(f)[0]["qa"]
    by_cat = defaultdict(list)
    for q in qa:
        # The normalized schema's convention: category-5 gold is the abstention answer (2 of conv-26's 47
        # category-5 items carry a stray "answer": "No", the rest only an adversarial_answer).
        gold = ABSTAIN_ANSWER if q["category"] == 5 else q["answer"]
        by_cat[q["category"]].append(locomo_f1(predict(q, gold), gold, q["category"]))
    return {c: sum(v) / len(v) for c, v in by_cat.items()}, {c: len(v) for c, v in by_cat.items()}


def test_locomo_gold_vs_gold_conv26(conv26_path):
    means, counts = _conv26_scores(conv26_path, lambda q, gold: gold)
    assert counts == {1: 32, 2: 37, 3: 13, 4: 70, 5: 47}
    for cat in (1, 2, 4, 5):
        assert means[cat] == 1.0, (cat, means[cat])
    # Category 3: the scorer cuts the gold at ';' but not the prediction, so gold scores below 1.
    # conv-26's own value (the 0.927 of benchmarks.md is over all ten conversations): 0.7672.
    assert means[3] < 1.0
    assert means[3] == pytest.approx(0.7672, abs=1e-4)


def test_locomo_always_abstain_conv26(conv26_path):
    means, _ = _conv26_scores(conv26_path, lambda q, gold: ABSTAIN_ANSWER)
    assert means[5] == 1.0
    for cat in (1, 2, 3, 4):
        assert means[cat] < 0.03, (cat, means[cat])
    assert means[1] == pytest.approx(0.0020, abs=1e-4)
    assert means[2] == 0.0
    assert means[3] == pytest.approx(0.0267, abs=1e-4)
    assert means[4] == pytest.approx(0.0116, abs=1e-4)


def test_locomo_f1_rules_by_hand():
    # Normalization drops articles/"and"/punctuation/commas; Porter stems "running" and "runs" alike.
    assert token_f1("The beach!", "beach") == 1.0
    assert token_f1("running", "runs") == 1.0
    # Multiset F1: pred {went, beach, beach}, gold {beach}: P = 1/3, R = 1 -> 0.5.
    assert token_f1("went beach beach", "beach") == pytest.approx(0.5)
    # Category 1: mean over gold parts of the best F1 over predicted parts: parts (painting, 1.0),
    # (pottery, 0) -> 0.5.
    assert locomo_f1("painting", "painting, pottery", 1) == pytest.approx(0.5)
    assert locomo_f1("pottery, painting", "painting, pottery", "1") == 1.0
    # Category 3: gold cut at ';' -> "Likely no" vs "Likely no" = 1.
    assert locomo_f1("Likely no", "Likely no; she is a counselor", 3) == 1.0
    # Category 5: abstention strings only.
    assert locomo_f1("It is not mentioned anywhere", "x", 5) == 1.0
    assert locomo_f1("No information available.", "x", 5) == 1.0
    assert locomo_f1("Yes", ABSTAIN_ANSWER, 5) == 0.0
    # Ints (conv-26 has year answers stored as ints) and None behave.
    assert locomo_f1("2022", 2022, 2) == 1.0
    assert locomo_f1(None, "beach", 4) == 0.0


def test_community_metrics_by_hand():
    # A-Mem F1: sets, no article removal: {the, beach} vs {beach} -> P 1/2, R 1 -> 2/3.
    assert amem_f1("the beach", "beach") == pytest.approx(2 / 3)
    assert amem_f1("", "beach") == 0.0
    # BLEU-1: clipped unigram precision x brevity penalty. 1/2 matched, c=2 > r=1 -> BP 1 -> 0.5.
    assert bleu1("the beach", "beach") == pytest.approx(0.5)
    # c=1 < r=3 -> BP = exp(1 - 3/1); precision 1 -> e^-2.
    assert bleu1("beach", "the sunny beach") == pytest.approx(math.exp(-2))
    # Per-sentence word tokenization: the inner period is split off as word_tokenize would.
    assert _word_tokenize("i went home. she left.") == ["i", "went", "home", ".", "she", "left", "."]
    assert exact_match("The Beach.", "beach") == 1.0
    assert exact_match("a beach house", "beach") == 0.0
    assert exact_match("", "") == 0.0
    assert accuracy("The beach", "beach", "em") == 1.0
    assert accuracy(None, "beach", "locomo_f1") == 0.0
    with pytest.raises(ValueError, match="unknown accuracy metric"):
        accuracy("a", "b", "rouge")


class _FakeJudge:
    """A judge with the interface memrl.policies.judge provides: exact-match verdicts, None for blanks."""

    def judge(self, questions, golds, answers):
        return [None if not a else float(a.lower() == g.lower()) for g, a in zip(golds, answers)]


def test_judge_hook_off_by_default_and_batched():
    assert judge_scores(["q1", "q2"], ["a", "b"], ["a", "x"]) == [None, None]
    assert judge_scores(["q1", "q2", "q3"], ["a", "b", "c"], ["A", "x", None], _FakeJudge()) == [1.0, 0.0, None]
    with pytest.raises(ValueError):
        judge_scores(["q"], ["a", "b"], ["a"])


# ---- TIME-Dial accuracy (Memory-T1 R_acc) -----------------------------------------------------------------
def test_timedial_accuracy_by_task():
    # Options: set equality after split (the double space of multi-select golds is harmless).
    assert timedial_accuracy("C B", "B  C", "Extract") == 1.0
    assert timedial_accuracy("B", "B  C", "Extract") == 0.0
    # Computation: chunks "3 months" (90 d) and "8 days" vs "9 days": |8 - 9| <= 1 -> every chunk matches.
    assert timedial_accuracy("3 months 9 days", "3 months 8 days", "Computation") == 1.0
    assert timedial_accuracy("3 months 10 days", "3 months 8 days", "Computation") == 0.0
    # Localization, graded (the v7 bug returned -0.5 for all of these):
    assert timedial_accuracy("January 15, 2024", "10:45:41 pm, January 15, 2024", "Localization") == 1.0
    assert timedial_accuracy("January 18, 2024", "January 15, 2024", "localization") == pytest.approx(0.7)  # 1 - 0.3
    assert timedial_accuracy("2024-01-25", "January 15, 2024", "Localization") == pytest.approx(0.44)  # .5 - .02*3
    assert timedial_accuracy("May 20, 2023", "May, 2023", "Localization") == 1.0  # inside the month-only gold
    assert timedial_accuracy("July 1, 2023", "May, 2023", "Localization") == 0.0  # 31 days after May 31
    # Timeline: position-wise / max length; a truncated prediction no longer scores 1.
    assert timedial_accuracy("(1)(3)(2)(4)", "(1)(2)(3)(4)", "Timeline") == pytest.approx(0.5)
    assert timedial_accuracy("(1)", "(1)(2)(3)(4)", "Timeline") == pytest.approx(0.25)
    assert timedial_accuracy("1 2 3 4", "(1)(2)(3)(4)", "Timeline") == -0.5


def test_parse_date_span_forms():
    from datetime import date

    assert parse_date_span("2023-05-08T13:56:00") == (date(2023, 5, 8), date(2023, 5, 8))
    assert parse_date_span("1:56 pm on 8 May, 2023") == (date(2023, 5, 8), date(2023, 5, 8))
    assert parse_date_span("May, 2023") == (date(2023, 5, 1), date(2023, 5, 31))
    assert parse_date_span("2024-02") == (date(2024, 2, 1), date(2024, 2, 29))
    assert parse_date_span("2022") == (date(2022, 1, 1), date(2022, 12, 31))
    assert parse_date_span("July 14th, 2022") == (date(2022, 7, 14), date(2022, 7, 14))
    assert parse_date_span("unknown") is None
    assert parse_date_span("February 30, 2023") is None
    assert parse_date_span("no date here") is None


# ---- Memory-T1 temporal terms and the full reward, hand-worked ---------------------------------------------
QUESTION = "When did Caroline go to the LGBTQ support group?"
MAY = {"start": "2023-05-01", "end": "2023-05-31"}
SESSIONS = [
    {"session_id": "session_1", "session_time": "2023-05-08T13:56:00",
     "utterances": [{"speaker": "Caroline", "text": "I went to a support group yesterday.",
                     "events": [{"event_summary": "Caroline went to the LGBTQ support group",
                                 "event_time": ["2023-05-07", "2023-05-07"]}]}]},
    {"session_id": "session_2", "session_time": "2023-06-15T10:00:00", "utterances": []},
]
# R_s just outside: 15 days after a 30-day range -> x = 0.5 -> 1.5 / (1 + e^0.25) - 0.5.
R_S_15_OF_30 = 1.5 / (1 + math.exp(0.25)) - 0.5  # = 0.156735...


def test_session_proximity_by_hand():
    assert session_proximity("2023-05-08", MAY) == 1.0
    assert session_proximity("2023-06-15", MAY) == pytest.approx(R_S_15_OF_30)
    assert R_S_15_OF_30 == pytest.approx(0.156735, abs=1e-6)
    assert session_proximity("2023-06-01", MAY) == pytest.approx(1.5 / (1 + math.exp(0.5 / 30)) - 0.5)  # d = 1
    assert session_proximity("2030-01-01", MAY) == pytest.approx(-0.5, abs=1e-6)  # far away: the floor
    assert session_proximity("not a date", MAY) == 0.0
    # Unknown start: open by default (a session before the end is inside) ...
    open_start = {"start": "unknown", "end": "2023-05-31"}
    assert session_proximity("2019-12-01", open_start) == 1.0
    # ... a half-open range decays on the scale open_range_days (30): same x = 15/30 as above.
    assert session_proximity("2023-06-15", open_start) == pytest.approx(R_S_15_OF_30)
    # ... and with Memory-T1's defaults the start is 2020-01-01: L = 1246 days, x = 15/1246.
    with_defaults = session_proximity("2023-06-15", open_start, unknown_defaults=MEMORY_T1_UNKNOWN_DEFAULTS)
    assert with_defaults == pytest.approx(1.5 / (1 + math.exp(0.5 * 15 / 1246)) - 0.5)
    assert session_proximity("2019-12-01", open_start, unknown_defaults=MEMORY_T1_UNKNOWN_DEFAULTS) < 0.25


def test_event_fidelity_and_relation_by_hand():
    from datetime import date

    may = (date(2023, 5, 1), date(2023, 5, 31))
    assert interval_relation(may, (date(2023, 5, 7), date(2023, 5, 7))) == 1.0  # contains
    assert interval_relation(may, (date(2023, 4, 20), date(2023, 5, 3))) == 0.5  # overlaps
    assert interval_relation(may, (date(2022, 1, 1), date(2022, 1, 2))) == -1.0  # disjoint
    assert interval_relation((None, None), (date(2022, 1, 1), None)) == 1.0  # open range contains anything
    assert interval_relation(may, (date(2023, 5, 9), date(2023, 5, 2))) == -1.0  # inverted event
    # Similarity of the event summary to the question (Memory-T1's simple_text_match):
    # summary words {caroline, went, lgbtq, support, group}; question words [when, did, caroline, lgbtq,
    # support, group] -> overlap 4/5 = 0.8; continuity: a run of 4 -> min(0.3, 4/5 * 0.3) = 0.24;
    # position: mean index (2+3+4+5)/4 / 6 = 0.583 -> (1 - 0.583) * 0.2 = 0.083; total 1.12 -> capped at 1.
    assert text_match_score("Caroline went to the LGBTQ support group", QUESTION) == 1.0
    # "Melanie painted a sunset" shares nothing with the question -> below the 0.2 gate -> skipped -> 0.
    assert event_fidelity([{"event_summary": "Melanie painted a sunset", "event_time": ["2022-01-01"] * 2}],
                          QUESTION, MAY) == 0.0
    disjoint = [{"event_summary": "Caroline went to the LGBTQ support group", "event_time": ["2022-01-01"] * 2}]
    assert event_fidelity(disjoint, QUESTION, MAY) == -1.0  # sim 1 x relation -1
    unknown = [{"event_summary": "Caroline went to the LGBTQ support group", "event_time": ["unknown", "unknown"]}]
    assert event_fidelity(unknown, QUESTION, MAY) == 0.0  # both ends unknown: skipped


def test_memory_t1_reward_hand_worked():
    parse = parse_answer_output('```json\n{"selected_memory": ["<session_1>", "<session_2>"], "answer": "B"}\n```',
                                "memory_t1")
    r = memory_t1_reward(parse, "B", gold_sessions=["session_1"], sessions=SESSIONS, question=QUESTION,
                         time_range=MAY, task="Order_Compare")
    # R_acc = 1 (option B).  R_ground = 0.5 ({s1, s2} overlaps {s1}, not equal).
    # session_1: R_s = 1 (inside May), R_f = sim 1 x contains 1 = 1 -> (1 + 1) / 2 = 1.
    # session_2: R_s = 0.156735 (15 days after May), R_f = 0 (no events) -> 0.078368.
    # R_temporal = (1 + 0.078368) / 2 = 0.539184.
    # R = 0.6 * 1 + 0.2 * 0.5 + 0.2 * 0.539184 = 0.807837.
    r_temporal = (1 + R_S_15_OF_30 / 2) / 2
    assert r.breakdown["accuracy"] == 1.0
    assert r.breakdown["evidence"] == 0.5
    assert r.breakdown["temporal"] == pytest.approx(r_temporal)
    assert r.value == pytest.approx(0.6 + 0.1 + 0.2 * r_temporal)
    assert r.value == pytest.approx(0.807837, abs=1e-6)

    # Exact selection and a wrong answer: 0.6 * 0 + 0.2 * 1 + 0.2 * 1 = 0.4.
    exact = parse_answer_output('{"selected_memory": ["session_1"], "answer": "A"}', "memory_t1")
    r2 = memory_t1_reward(exact, "B", gold_sessions=["session_1"], sessions=SESSIONS, question=QUESTION,
                          time_range=MAY, task="Order_Compare")
    assert r2.value == pytest.approx(0.4)

    # Disjoint selection, no sessions info (R_temporal left out): 0.6 * 1 + 0.2 * -1 = 0.4.
    wrong_sel = parse_answer_output('{"selected_memory": ["<session_9>"], "answer": "B"}', "memory_t1")
    assert memory_t1_reward(wrong_sel, "B", gold_sessions=["S1"]).value == pytest.approx(0.4)

    # Unparseable output: -1.
    broken = parse_answer_output('{"selected_memory": ["<session_1>"] "answer": "B"}', "memory_t1")
    assert not broken.ok
    assert memory_t1_reward(broken, "B", gold_sessions=["session_1"]).value == -1.0

    # Localization bug fix: a one-day-off date earns the graded 0.9, not -0.5. Selection empty, gold
    # sessions empty -> set match 1 (equal empty sets), temporal 0 -> 0.6 * 0.9 + 0.2 * 1 + 0 = 0.74.
    loc = parse_answer_output('{"selected_memory": [], "answer": "May 8, 2023"}', "memory_t1")
    r3 = memory_t1_reward(loc, "May 7, 2023", gold_sessions=[], sessions=SESSIONS, question=QUESTION,
                          time_range=MAY, task="Localization")
    assert r3.breakdown["accuracy"] == pytest.approx(0.9)
    assert r3.value == pytest.approx(0.74)


def test_temporal_consistency_dedups_and_unknown_sessions():
    # session_1 selected twice counts once; an unknown id contributes 0 but counts in the mean.
    r = temporal_consistency(["session_1", "session_1", "session_7"], SESSIONS, QUESTION, MAY)
    assert r.value == pytest.approx((1.0 + 0.0) / 2)
    assert temporal_consistency([], SESSIONS, QUESTION, MAY).value == 0.0
    # Our schema's layout: a Session dataclass with turns[].meta["events"].
    from memrl.data.schema import Session, Turn

    ours = [Session("session_1", 1, "2023-05-08T13:56:00", [Turn("D1:1", "Caroline", "hi", meta={
        "events": [{"event_summary": "Caroline went to the LGBTQ support group", "event_time": ["2023-05-07"] * 2}]})])]
    assert temporal_consistency(["session_1"], ours, QUESTION, MAY).value == 1.0


# ---- evidence -----------------------------------------------------------------------------------------------
def test_set_match_and_prf():
    assert set_match(["a", "b"], ["b", "a"]) == 1.0
    assert set_match(["a", "c"], ["a", "b"]) == 0.5
    assert set_match(["c"], ["a"]) == -1.0
    assert set_match([], []) == 1.0
    assert id_prf(["a", "c"], ["a", "b", "d"]) == pytest.approx({"precision": 0.5, "recall": 1 / 3, "f1": 0.4})
    assert id_prf([], ["a"])["f1"] == 0.0


def test_context_picker_coverage_and_margin():
    gold = ["a", "b"]
    # Cov - 0.1 * extra inside |S_gold| + margin (= 4), 0 beyond it.
    assert picker_coverage_reward(["a", "b"], gold, 2).value == 1.0
    assert picker_coverage_reward(["b"], gold, 2).value == 0.5
    assert picker_coverage_reward(["a", "b", "c"], gold, 2).value == pytest.approx(0.9)
    assert picker_coverage_reward(["a", "b", "c", "d"], gold, 2).value == pytest.approx(0.8)
    assert picker_coverage_reward(["a", "b", "c", "d", "e"], gold, 2).value == 0.0
    assert picker_coverage_reward(["c"], gold, 2).value == 0.0
    # Stage II tightens the margin: the same 3-id pick now scores 0.
    assert picker_coverage_reward(["a", "b", "c"], gold, 0).value == 0.0
    # Duplicates or ids outside the candidates: the format penalty.
    assert picker_coverage_reward(["a", "a"], gold, 2).value == -1.0
    assert picker_coverage_reward(["a", "z"], gold, 2, candidates=["a", "b", "c"]).value == -1.0
    assert picker_coverage_reward([], [], 2).value == 1.0
    p = parse_answer_output('{"rationale": "needs both", "selected": ["a", "b", "c"]}', "picker")
    assert context_picker_reward(p, gold, margin=2).value == pytest.approx(0.9)
    bad = parse_answer_output("I pick a and b", "picker")
    assert context_picker_reward(bad, gold).value == -1.0


# ---- format / costs -----------------------------------------------------------------------------------------
def test_format_and_costs():
    assert format_reward(True) == 0.0 and format_reward(False) == -1.0 and format_reward(False, -0.5) == -0.5
    assert length_cost("one two three", budget=5) == 0.0
    assert length_cost("w " * 15, budget=10, coef=0.2) == pytest.approx(-0.1)  # 5 over 10 -> half of 0.2
    assert length_cost(100, budget=10, coef=0.2) == pytest.approx(-0.2)  # capped
    assert redundancy_cost(8, allowed=2, coef=0.1) == pytest.approx(-0.075)  # 6 of 8 beyond
    result = ApplyResult(applied=[(Op("ADD", text="x"), "m1")], rejected=[RejectedOp(Op("DELETE", id="9"), "unknown id 9")])
    assert invalid_op_penalty(result) == pytest.approx(-0.5)
    assert invalid_op_penalty(ApplyResult()) == 0.0
    assert invalid_op_penalty(3, total=4, coef=2.0) == pytest.approx(-1.5)
    assert compression_reward(25, 100) == pytest.approx(0.75)
    assert compression_reward(10, 0) == 0.0


# ---- write-side temporal term -------------------------------------------------------------------------------
def test_write_temporal_reward_by_hand():
    gold = [GoldOp("D3:2", "UPDATE", "Ana/city", "Ana lives in Lisbon", "2023-06-01")]
    current = [{"id": "m1", "text": "Ana lives in Porto"}]
    # Right: UPDATE with the right event time -> items [time 1, supersession +1] -> 1.0.
    good = [Op("UPDATE", id="0", text="Ana lives in Lisbon now", event_time="2023-06-01T09:00:00")]
    r = write_temporal_reward(good, gold, current)
    assert r.value == 1.0 and r.breakdown["event_time_acc"] == 1.0 and r.breakdown["supersession"] == 1.0
    # Within the 1-day tolerance still counts; 3 days off does not -> items [0, +1] -> 0.5.
    assert write_temporal_reward([Op("UPDATE", id="0", text="Ana lives in Lisbon", event_time="2023-06-02")],
                                 gold, current).value == 1.0
    assert write_temporal_reward([Op("UPDATE", id="0", text="Ana lives in Lisbon", event_time="2023-06-04")],
                                 gold, current).value == 0.5
    # Wrong: an ADD instead of the UPDATE (Porto stays current beside Lisbon), no time -> [0, -1] -> -0.5.
    dup = [Op("ADD", text="Ana lives in Lisbon")]
    r = write_temporal_reward(dup, gold, current)
    assert r.value == -0.5 and r.breakdown["supersession"] == -1.0
    # Plus a verbatim re-ADD of a current entry: items [0, -1, -1] -> -2/3.
    r = write_temporal_reward(dup + [Op("ADD", text="Ana lives in Porto.")], gold, current)
    assert r.value == pytest.approx(-2 / 3) and r.breakdown["duplicate_adds"] == 1.0
    # Nothing written: [time 0, supersession 0] -> 0; nothing scorable -> 0.
    assert write_temporal_reward([], gold, current).value == 0.0
    assert write_temporal_reward([], [], []).value == 0.0
    # Matching by world key when both sides carry one (dicts).
    keyed = [{"op": "UPDATE", "entry": "Ana/city", "text": "moved", "event_time": "June 1, 2023"}]
    assert write_temporal_reward(keyed, [g.__dict__ for g in gold], current).value == 1.0


# ---- composite ----------------------------------------------------------------------------------------------
def test_composite_reward():
    comp = CompositeReward({"accuracy": 0.6, "evidence": 0.2, "temporal": 0.2})
    r = comp({"accuracy": 1.0, "evidence": None, "temporal": RewardResult(0.5, {"session_proximity": 1.0}),
              "extra": 3.0})
    assert r.value == pytest.approx(0.6 + 0.1)  # evidence skipped, extra unweighted
    assert r.breakdown["temporal/session_proximity"] == 1.0 and r.breakdown["extra"] == 3.0
    assert comp({}, ok=False).value == -1.0
    with pytest.raises(ValueError):
        CompositeReward({"accuracy": float("nan")})
    p = parse_answer_output("[1] [4]\n**Answer:** the beach", "memory_r1")
    assert memory_r1_answer_reward(p, "beach").value == 1.0
    assert memory_r1_answer_reward(p, "sunny beach", metric="token_f1").value == pytest.approx(2 / 3)
    assert memory_r1_answer_reward(parse_answer_output("beach", "memory_r1"), "beach").value == 0.0


# ---- TRL adapters -------------------------------------------------------------------------------------------
def test_trl_adapter_modes_and_names():
    fn = make_answer_reward("memory_t1")
    assert fn.__name__ == "memory_t1_reward"
    completions = [
        '```json\n{"selected_memory": ["<session_1>"], "answer": "B"}\n```',
        [{"role": "assistant", "content": '{"selected_memory": ["<session_2>"], "answer": "A"}'}],
        "no json at all",
    ]
    cols = {"answer": ["B"] * 3, "task": ["Order_Compare"] * 3, "evidence_session_ids": [["session_1"]] * 3,
                "sessions": [SESSIONS] * 3, "question": [QUESTION] * 3, "time_range": [MAY] * 3}
    logged = {}
    out = fn(prompts=["p"] * 3, completions=completions, log_metric=logged.__setitem__, trainer_state=None, **cols)
    # Row 1: 0.6 + 0.2 + 0.2 * 1 = 1.0. Row 2: 0 + 0.2 * -1 + 0.2 * (R_s 0.1567 / 2) = -0.18433. Row 3: -1.
    assert out[0] == pytest.approx(1.0)
    assert out[1] == pytest.approx(-0.2 + 0.2 * R_S_15_OF_30 / 2)
    assert out[2] == -1.0
    assert "memory_t1_reward/accuracy" in logged
    acc = make_answer_reward("memory_t1", term="accuracy")
    assert acc.__name__ == "memory_t1_accuracy"
    assert acc(prompts=["p"] * 3, completions=completions, **cols) == [1.0, 0.0, None]
    # Rows without a gold answer get None (TRL: no reward from this function).
    assert make_answer_reward("plain")(prompts=["p"], completions=["x"], answer=[None]) == [None]
    assert make_answer_reward("plain", metric="locomo_f1")(
        prompts=["p"], completions=["Not mentioned."], answer=[ABSTAIN_ANSWER], category_id=[5]) == [1.0]
    assert completion_text([{"role": "assistant", "content": [{"type": "text", "text": "hi"}]}]) == "hi"


def test_trl_picker_margin_is_a_schedule_knob():
    fn = make_answer_reward("picker", margin=2)
    comp = ['{"rationale": "r", "selected": ["1", "2", "3"]}']
    cols = {"minimal_evidence": [["1", "2"]], "candidate_ids": [["1", "2", "3", "4"]]}
    assert fn(prompts=["p"], completions=comp, **cols) == [pytest.approx(0.9)]
    fn.margin = 0  # stage II
    assert fn(prompts=["p"], completions=comp, **cols) == [0.0]
    assert fn(prompts=["p"], completions=comp, minimal_evidence=[None]) == [None]
    import pickle

    assert pickle.loads(pickle.dumps(fn)).margin == 0


def test_dialogue_that_looks_like_output_is_never_parsed():
    # The prompt carries dialogue that is itself a perfect manager op / answer; the completion is not.
    prompt = ('Caroline: I typed {"memory": [{"id": "0", "text": "Caroline likes tea", "event": "ADD"}]} '
              "in my notes. **Answer:** beach")
    answer = make_answer_reward("memory_r1")
    assert answer(prompts=[prompt], completions=["It might be the beach"], answer=["beach"]) == [0.0]
    assert answer(prompts=[[{"role": "user", "content": prompt}]],
                  completions=[[{"role": "assistant", "content": "**Answer:** beach"}]], answer=["beach"]) == [1.0]


def test_rewards_import_is_light():
    code = (
        "import sys; import memrl.rewards\n"
        "heavy = [m for m in ('torch', 'transformers', 'nltk', 'scipy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "from memrl.rewards.trl_adapters import make_answer_reward\n"
        "make_answer_reward('memory_t1')(prompts=['p'], completions=['{\"answer\": \"A\"}'], answer=['A'])\n"
        "heavy = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ---- properties: never raise, stay in range -----------------------------------------------------------------
_text = st.text(max_size=80)
_jsonish = st.text(alphabet='{}[]",:\'` \nabcsession_0123456789ADUPTENOMansw', max_size=120)
_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(pred=_text, gold=_text, cat=st.sampled_from([None, 1, 2, 3, 4, 5, "3", "x"]))
def test_accuracy_metrics_in_range(pred, gold, cat):
    for metric in ("em", "token_f1", "locomo_f1", "amem_f1", "bleu1"):
        v = accuracy(pred, gold, metric, category_id=cat)
        assert 0.0 <= v <= 1.0, (metric, v)
    for task in ("computation", "timeline", "localization", "Extract", None):
        assert -0.5 <= timedial_accuracy(pred, gold, task) <= 1.0


@_SETTINGS
@given(a=_text, b=_text, c=_text)
def test_temporal_terms_in_range(a, b, c):
    assert parse_date_span(a) is None or parse_date_span(a)[0] <= parse_date_span(a)[1]
    for tr in ({"start": a, "end": b}, [b, c], a, None):
        assert -0.5 <= session_proximity(c, tr) <= 1.0
        assert -0.5 <= session_proximity(c, tr, unknown_defaults=MEMORY_T1_UNKNOWN_DEFAULTS) <= 1.0
        assert -1.0 <= event_fidelity([{"event_summary": a, "event_time": [b, c]}], c, tr) <= 1.0
    assert 0.0 <= text_match_score(a, b) <= 1.0
    sessions = [{"session_id": "session_1", "session_time": a,
                 "utterances": [{"events": [{"event_summary": b, "event_time": [a, c]}]}]}]
    assert -0.75 <= temporal_consistency(["session_1", b], sessions, c, [a, b]).value <= 1.0
    w = write_temporal_reward([{"op": "ADD", "text": a, "event_time": b}, {"op": c, "text": b}],
                              [{"op": "UPDATE", "entry": "k", "text": a, "event_time": c}], [{"text": b}])
    assert -1.0 <= w.value <= 1.0


@_SETTINGS
@given(completion=st.one_of(_text, _jsonish), sel=st.lists(st.sampled_from("abcde"), max_size=7),
       margin=st.integers(0, 4))
def test_adapters_and_evidence_in_range(completion, sel, margin):
    t1 = make_answer_reward("memory_t1")(
        prompts=["p"], completions=[completion], answer=["B"], task=["Localization"],
        evidence_session_ids=[["session_1"]], sessions=[SESSIONS], question=[QUESTION], time_range=[MAY])
    assert -1.0 <= t1[0] <= 1.0
    for mode in ("memory_r1", "plain"):
        v = make_answer_reward(mode)(prompts=["p"], completions=[completion], answer=["beach"])[0]
        assert 0.0 <= v <= 1.0
    pk = make_answer_reward("picker", margin=margin)(prompts=["p"], completions=[completion],
                                                      minimal_evidence=[["a", "b"]])[0]
    assert -1.0 <= pk <= 1.0
    assert -1.0 <= picker_coverage_reward(sel, ["a", "b"], margin).value <= 1.0
    assert set_match(sel, ["a"]) in (1.0, 0.5, -1.0)
    assert all(0.0 <= v <= 1.0 for v in id_prf(sel, ["a", "b"]).values())
