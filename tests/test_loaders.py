"""Benchmark loaders (memrl.data.loaders) and the `memrl data convert|stats` commands (memrl.data.commands).

Fixtures (tests/fixtures/):
- locomo_quirks.json: two conversations cut from LoCoMo conv-26 (CC BY-NC 4.0, see locomo_quirks_NOTICE.md)
  with every quirk of the release injected.
- longmemeval_small.json: five LongMemEval records written to the README's schema (unsorted haystack,
  an `_abs` question, an integer answer, a preference rubric).
- timedial_*.json: TIME-Dial in Memory-T1's layouts. The real files were unavailable; timedial_small.json was
  produced by a line-for-line copy of Memory-T1's convert_to_verl_v2.py from the question/contexts/time-range
  fixtures beside it, so the two forms must load to the same conversations.
The real conversation conv-26 is read from data/locomo/ or ../shared/data/locomo/.
"""

from __future__ import annotations

import argparse
import atexit
import copy
import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memrl.data import commands
from memrl.data.io import (
    DataError,
    read_conversations,
    read_hf,
    summarize,
    to_hf_dataset,
    write_conversations,
)
from memrl.data.loaders import (
    LOADERS,
    clean_locomo_evidence,
    load,
    load_locomo,
    load_longmemeval,
    load_timedial,
)
from memrl.data.schema import ABSTAIN_ANSWER, Conversation

REPO = Path(__file__).resolve().parents[1]
FIX = Path(__file__).resolve().parent / "fixtures"
LOCOMO_QUIRKS = FIX / "locomo_quirks.json"
LME = FIX / "longmemeval_small.json"
TD_VERL = FIX / "timedial_small.json"
TD_QUESTIONS = FIX / "timedial_questions_small.json"
TD_CONTEXTS = FIX / "timedial_contexts_small.json"
TD_RANGES = FIX / "timedial_time_ranges_small.json"


def _conv26() -> Path:
    for p in (REPO / "data/locomo/conv-26.json", REPO.parent / "shared/data/locomo/conv-26.json"):
        if p.exists():
            return p
    pytest.skip("LoCoMo conv-26.json not found in data/locomo/ or ../shared/data/locomo/")


# ---- LoCoMo --------------------------------------------------------------------------------------------
def test_conv26_counts_and_fields():
    convs = load_locomo(_conv26())
    s = summarize(convs)
    assert (s["conversations"], s["sessions"], s["turns"], s["questions"]) == (1, 19, 419, 199)
    assert s["questions_by_category"] == {
        "1 multi_hop": 32,
        "2 temporal": 37,
        "3 open_domain": 13,
        "4 single_hop": 70,
        "5 adversarial": 47,
    }
    c = convs[0]
    assert c.conversation_id == "conv-26" and c.speakers == ["Caroline", "Melanie"]
    assert c.meta["benchmark"] == "locomo" and c.meta["source"] == "conv-26.json"
    assert c.meta["sessions_without_turns"] == [f"session_{n}" for n in range(20, 36)]
    assert [s.index for s in c.sessions] == list(range(1, 20))
    assert c.sessions[0].timestamp == "2023-05-08T13:56:00"  # "1:56 pm on 8 May, 2023"
    assert c.sessions[-1].timestamp == "2023-10-22T09:55:00"
    assert all(
        q.question_time == "2023-10-22T09:55:00" and q.meta["question_time_is_inferred"] for q in c.questions
    )
    # Memory-R1's training split is conv-26 without category 5: exactly 152 QA (benchmarks.md 1.8).
    assert sum(q.category_id != 5 for q in c.questions) == 152
    assert all(isinstance(q.answer, str) for q in c.questions)
    assert c.questions[1].answer == "2022"  # an integer in the file
    cat5 = [q for q in c.questions if q.category_id == 5]
    assert all(q.answer == ABSTAIN_ANSWER and q.meta["adversarial_answer"] for q in cat5)
    assert sorted(q.meta["raw_answer"] for q in cat5 if "raw_answer" in q.meta) == ["No", "No"]
    q37 = c.questions[37]
    assert q37.evidence_turn_ids == ["D8:6", "D9:17"] and q37.meta["evidence_raw"] == ["D8:6; D9:17"]
    assert q37.evidence_session_ids == ["session_8", "session_9"]
    index = c.turn_index()
    assert all(t in index for q in c.questions for t in q.evidence_turn_ids)
    assert not any("evidence_unresolved" in q.meta for q in c.questions)
    d15 = index["D1:5"][1]
    assert d15.meta["image_caption"].startswith("a photo of a dog") and d15.meta["img_url"][0].startswith(
        "https://"
    )
    assert "event_summary" not in c.meta and "observation" not in c.meta


def test_locomo_many_conversations_from_conv26(tmp_path):
    """The full locomo10.json path: ten conversations in one list, ids edited (the real file is not here)."""
    base = json.loads(_conv26().read_text())[0]
    data = []
    for i in range(10):
        rec = copy.deepcopy(base)
        rec["sample_id"] = f"conv-{100 + i}"
        data.append(rec)
    path = tmp_path / "locomo10_synthetic.json"
    path.write_text(json.dumps(data))
    convs = load_locomo(path)
    s = summarize(convs)
    assert (s["conversations"], s["sessions"], s["turns"], s["questions"]) == (10, 190, 4190, 1990)
    assert [c.conversation_id for c in convs] == [f"conv-{100 + i}" for i in range(10)]
    assert convs[3].questions[0].question_id == "conv-103:q0"
    data[4]["sample_id"] = "conv-100"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"record 4: sample_id: duplicate sample_id 'conv-100'"):
        load_locomo(path)


def test_locomo_quirks_fixture():
    a, b = load_locomo(LOCOMO_QUIRKS)
    assert a.conversation_id == "conv-901" and b.conversation_id == "conv-902"
    assert [s.session_id for s in a.sessions] == ["session_1", "session_2", "session_3"]
    assert a.meta["sessions_without_turns"] == ["session_4", "session_5"]  # date keys without session lists
    assert [s.session_id for s in b.sessions] == ["session_1"]
    assert b.meta["sessions_without_turns"] == ["session_2", "session_3"]  # an empty list and a bare date key
    q = {x.question_id.split(":")[1]: x for x in a.questions}
    assert q["q1"].answer == "2022" and b.questions[0].answer == "3"  # integer answers
    assert q["q2"].evidence_turn_ids == ["D1:3", "D2:7"] and q["q2"].meta["evidence_raw"] == ["D1:3; D2:7"]
    assert q["q3"].evidence_turn_ids == ["D2:1", "D1:4", "D1:6"]
    assert q["q3"].evidence_session_ids == ["session_1", "session_2"]  # session order, not evidence order
    assert q["q4"].evidence_turn_ids == ["D1:3"]  # "D:1:3"
    assert q["q5"].evidence_turn_ids == ["D2:5"]  # "D2:05"
    assert q["q6"].evidence_turn_ids == [] and q["q6"].meta["evidence_unresolved"] == ["D"]
    assert q["q7"].evidence_turn_ids == ["D3:2"] and q["q7"].meta["evidence_unresolved"] == ["D3:99"]
    assert q["q8"].evidence_turn_ids == [] and "evidence_raw" not in q["q8"].meta  # empty evidence is fine
    assert "evidence_raw" not in q["q0"].meta
    assert q["q9"].answer == ABSTAIN_ANSWER and q["q9"].meta["raw_answer"] == "No"
    assert q["q9"].meta["adversarial_answer"] == "Yes"
    assert q["q10"].answer == ABSTAIN_ANSWER and "raw_answer" not in q["q10"].meta
    assert [x.category for x in a.questions[:3]] == ["temporal", "temporal", "multi_hop"]
    assert a.questions[8].category == "open_domain" and a.questions[8].category_id == 3


def test_clean_locomo_evidence():
    known = {"D8:6", "D9:17", "D9:1", "D4:4", "D4:6", "D11:26", "D30:5"}
    ids, bad = clean_locomo_evidence(
        ["D8:6; D9:17", "D9:1 D4:4 D4:6", "D", "D:11:26", "D30:05", "D10:19", "D8:6"], known
    )
    assert ids == ["D8:6", "D9:17", "D9:1", "D4:4", "D4:6", "D11:26", "D30:5"]
    assert bad == ["D", "D10:19"]
    assert clean_locomo_evidence([], known) == ([], [])


# ---- LongMemEval ---------------------------------------------------------------------------------------
def test_longmemeval_fixture():
    convs = {c.conversation_id: c for c in load_longmemeval(LME)}
    assert len(convs) == 5
    t = convs["gpt4_2655b836"]
    # unsorted haystack (oracle style) comes out chronological, original ids kept
    assert [s.meta["original_session_id"] for s in t.sessions] == [
        "ultrachat_418261",
        "answer_b8a1f9c4_1",
        "answer_b8a1f9c4_2",
    ]
    assert [s.timestamp for s in t.sessions] == [
        "2023-03-28T10:00:00",
        "2023-04-03T20:45:00",
        "2023-04-15T18:30:00",
    ]
    assert [s.session_id for s in t.sessions] == ["session_1", "session_2", "session_3"]
    q = t.questions[0]
    assert q.answer == "12" and q.category == "temporal-reasoning" and q.category_id is None
    assert q.question_time == "2023-04-20T09:12:00"
    assert q.evidence_session_ids == ["session_2", "session_3"]
    assert q.evidence_turn_ids == ["D2:1", "D3:1"]
    assert t.sessions[1].turns[0].meta == {"has_answer": True} and t.sessions[1].turns[1].meta == {}
    assert t.speakers == ["user", "assistant"] and t.sessions[0].turns[1].speaker == "assistant"
    abs_q = convs["gpt4_0b2f1d21_abs"].questions[0]
    assert abs_q.meta["abstention"] is True and abs_q.category == "temporal-reasoning"
    assert "abstention" not in q.meta
    assert convs["8a2466db"].questions[0].meta["answer_is_rubric"] is True
    assert convs["e47becba"].questions[0].evidence_session_ids == ["session_2"]
    assert all(c.meta == {"benchmark": "longmemeval", "source": LME.name} for c in convs.values())


# ---- TIME-Dial -----------------------------------------------------------------------------------------
def test_timedial_verl_fixture():
    convs = {c.conversation_id: c for c in load_timedial(TD_VERL)}
    assert list(convs) == ["3f9c2a10", "b71e0d44", "9e71fc12", "c0d3e5f7", "5a6b7c8d"]
    c = convs["3f9c2a10"]
    q = c.questions[0]
    assert (q.category, q.category_id, q.answer) == ("Explicit_Reasoning", "Level 2", "B")
    assert q.question.startswith("What did Nora Hale do with pottery") and "2025-07-23" not in q.question
    assert q.options == {
        "A": "Nora Hale glazed three mugs.",
        "B": "Nora Hale made her first bowl on the wheel.",
        "C": "Nora Hale sold two mugs at a craft fair.",
        "D": "Nora Hale signed up for a pottery clas",
    }
    assert q.meta["question_stem"].endswith("March 20, 2020?") and q.meta["answer_format"] == "single_choice"
    assert q.time_range == ["2020-03-15T00:00:00", "2020-03-20T23:59:59"] and q.question_time is None
    assert q.evidence_session_ids == ["session_2"] and q.evidence_turn_ids == ["D2:2"]
    assert [s.timestamp for s in c.sessions] == sorted(s.timestamp for s in c.sessions)
    assert c.sessions[0].turns[0].meta["event_time"] == ["2020-03-02T00:00:00", "2020-03-02T23:59:59"]
    assert sorted(q.meta["prompt_session_ids"]) == ["session_1", "session_2", "session_3", "session_4"]
    assert c.meta["sessions_from"] == "extra_info.all_sessions" and c.meta["data_source"] == "TIME-Dial"
    ext = convs["b71e0d44"].questions[0]
    assert ext.answer == "B  C" and ext.meta["answer_format"] == "multi_choice"
    assert ext.time_range is None  # "unknown" .. "unknown"
    assert convs["b71e0d44"].questions[0].options["A"] == "Tomas Reyes ran a marathon in Boston."
    loc = convs["9e71fc12"]
    assert loc.questions[0].time_range == [None, "2022-09-05T19:20:00"] and loc.questions[0].options is None
    # source session ids 9, 7, 8 -> chronological session_1..3; gold "session_8" maps to session_3
    assert [s.meta["original_session_id"] for s in loc.sessions] == ["session_9", "session_7", "session_8"]
    assert loc.questions[0].evidence_session_ids == ["session_3"]
    assert loc.questions[0].meta["original_evidence_session_ids"] == ["session_8"]
    dc = convs["c0d3e5f7"].questions[0]
    assert list(dc.options) == ["A", "B", "C"] and dc.time_range == [
        "2022-09-01T00:00:00",
        "2022-09-05T23:59:59",
    ]
    tl = convs["5a6b7c8d"].questions[0]
    assert tl.meta["answer_format"] == "sequence" and tl.options is None and tl.category_id == "Level 3"


def test_timedial_question_form_matches_verl():
    verl = load_timedial(TD_VERL)
    qform = load_timedial(TD_QUESTIONS, contexts=TD_CONTEXTS, time_ranges=TD_RANGES)
    for v, f in zip(verl, qform, strict=True):
        qv, qf = v.questions[0], f.questions[0]
        for field in (
            "question_id",
            "question",
            "answer",
            "category",
            "category_id",
            "evidence_turn_ids",
            "evidence_session_ids",
            "options",
        ):
            assert getattr(qv, field) == getattr(qf, field), field
        assert [
            (s.timestamp, s.meta["original_session_id"], [t.text for t in s.turns]) for s in v.sessions
        ] == [(s.timestamp, s.meta["original_session_id"], [t.text for t in s.turns]) for s in f.sessions]
        # the converter keeps only first names
        assert [n.split()[0] for n in f.speakers] == v.speakers
    # the time-range file has no entry for 5a6b7c8d; the verl converter wrote its default range instead
    assert qform[-1].questions[0].time_range is None
    assert verl[-1].questions[0].time_range == ["2021-01-01T00:00:00", "2025-12-31T23:59:59"]
    with pytest.raises(DataError, match=r"timedial_questions_small.json: record 0 .*contexts file"):
        load_timedial(TD_QUESTIONS)


def test_timedial_parquet_and_prompt_fallback(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = json.loads(TD_VERL.read_text())
    # convert_to_parquet.py: extra_info as a JSON string column
    rows = [{**r, "extra_info": json.dumps(r["extra_info"])} for r in records]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "td.parquet")
    assert load_timedial(tmp_path / "td.parquet") == [
        _with_source(c, "td.parquet") for c in load_timedial(TD_VERL)
    ]

    # Without extra_info.all_sessions the sessions are parsed from the prompt's session blocks.
    for r in records:
        del r["extra_info"]["all_sessions"]
    (tmp_path / "noall.json").write_text(json.dumps(records))
    full = load_timedial(TD_VERL)
    parsed = load_timedial(tmp_path / "noall.json")
    for f, p in zip(full, parsed, strict=True):
        assert p.meta["sessions_from"] == "prompt"
        assert [
            (
                s.timestamp,
                s.meta["original_session_id"],
                [(t.speaker, t.text, t.meta["utterance_time"]) for t in s.turns],
            )
            for s in p.sessions
        ] == [
            (
                s.timestamp,
                s.meta["original_session_id"],
                [(t.speaker, t.text, t.meta["utterance_time"]) for t in s.turns],
            )
            for s in f.sessions
        ]
        assert p.questions[0].evidence_session_ids == f.questions[0].evidence_session_ids
        assert p.questions[0].evidence_turn_ids == []  # relevance marks live only in all_sessions


def _with_source(c: Conversation, name: str) -> Conversation:
    c.meta["source"] = name
    return c


def test_timedial_eval_prompt_layout(tmp_path):
    """Memory-T1's eval scripts render sessions as '<time>: <6>, Full Name <time> : text' (bm25 results)."""
    history = (
        "2020-04-02T14:03:00: <6>, India Brown 2020-04-02T14:03:00 : Hey Debra! Long time no talk.\n"
        "Debra Ryan 2020-04-02T14:03:00 : Hey India, doing good: busy.\n"
        "2020-03-30T09:00:00: <2>, Debra Ryan 2020-03-30T09:00:00 : Started my business plan.\n"
        "India Brown 2020-03-30T09:00:00 : Nice!\n"
    )
    prompt = (
        "You are a memory-aware assistant.\n\n**User Question:**\n2025-07-24 13:08:36: What did Debra start?"
        "\nA. A business plan\nB. A garden\n\n***session memory:** \n"
        + history
        + "\n\n**Expected Response:**\n```json\n{}\n```\n"
    )
    rec = {
        "data_source": "TIME-Dial",
        "prompt": [{"role": "user", "content": prompt}],
        "ability": "Order_Compare",
        "reward_model": {"ground_truth": {"answer": "A", "selected_sessions": ["session_2"]}},
        "extra_info": {"index": "q1", "question_time_range": {"start": "unknown", "end": "unknown"}},
    }
    (tmp_path / "e.json").write_text(json.dumps([rec]))
    (c,) = load_timedial(tmp_path / "e.json")
    assert [s.meta["original_session_id"] for s in c.sessions] == ["session_2", "session_6"]
    assert [(t.speaker, t.text) for t in c.sessions[1].turns] == [
        ("India Brown", "Hey Debra! Long time no talk."),
        ("Debra Ryan", "Hey India, doing good: busy."),
    ]
    q = c.questions[0]
    assert q.question == "What did Debra start?\nA. A business plan\nB. A garden"
    assert q.options == {"A": "A business plan", "B": "A garden"} and q.category_id == "Level 1"
    assert q.evidence_session_ids == ["session_1"] and q.meta["prompt_session_ids"] == [
        "session_2",
        "session_1",
    ]


# ---- round trips ---------------------------------------------------------------------------------------
LOADED = {
    "locomo": lambda: load_locomo(LOCOMO_QUIRKS),
    "longmemeval": lambda: load_longmemeval(LME),
    "timedial": lambda: load_timedial(TD_VERL),
}


@pytest.mark.parametrize("fmt", sorted(LOADED))
def test_round_trip_jsonl_and_datasets(fmt, tmp_path):
    convs = LOADED[fmt]()
    write_conversations(tmp_path / "c.jsonl", convs)
    assert read_conversations(tmp_path / "c.jsonl") == convs
    to_hf_dataset(convs).save_to_disk(str(tmp_path / "ds"))
    assert read_hf(tmp_path / "ds") == convs
    assert [Conversation.from_dict(json.loads(json.dumps(c.to_dict()))) for c in convs] == convs


# ---- malformed input -----------------------------------------------------------------------------------
def _write(tmp_path: Path, name: str, obj) -> Path:
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj, indent=1))
    return p


@pytest.mark.parametrize(
    "loader,fixture", [(load_locomo, LOCOMO_QUIRKS), (load_longmemeval, LME), (load_timedial, TD_VERL)]
)
def test_truncated_json_names_file_and_position(loader, fixture, tmp_path):
    text = fixture.read_text()
    p = _write(tmp_path, "cut.json", text[: len(text) // 2])
    with pytest.raises(DataError, match=r"cut\.json: invalid JSON at line \d+ column \d+: .*truncated"):
        loader(p)


def test_missing_key_wrong_type_bad_date_locomo(tmp_path):
    data = json.loads(LOCOMO_QUIRKS.read_text())
    bad = copy.deepcopy(data)
    del bad[1]["qa"][1]["category"]
    with pytest.raises(
        DataError, match=r"x\.json: record 1 \(sample_id 'conv-902'\): qa\[1\]\.category: missing key"
    ):
        load_locomo(_write(tmp_path, "x.json", bad))
    bad = copy.deepcopy(data)
    bad[0]["qa"][3]["category"] = "4"
    with pytest.raises(
        DataError,
        match=r"record 0 \(sample_id 'conv-901'\): qa\[3\]\.category: expected integer, "
        r"got string '4'",
    ):
        load_locomo(_write(tmp_path, "x.json", bad))
    bad = copy.deepcopy(data)
    bad[0]["conversation"]["session_2_date_time"] = "1:56 pm on 32 May, 2023"
    with pytest.raises(
        DataError, match=r"conversation\.session_2_date_time: unparsable date '1:56 pm on 32 May"
    ):
        load_locomo(_write(tmp_path, "x.json", bad))
    bad = copy.deepcopy(data)
    del bad[0]["conversation"]["session_1"][2]["dia_id"]
    with pytest.raises(DataError, match=r"conversation\.session_1\[2\]\.dia_id: missing key"):
        load_locomo(_write(tmp_path, "x.json", bad))
    bad = copy.deepcopy(data)
    bad[0]["qa"][0]["category"] = 6
    with pytest.raises(DataError, match=r"qa\[0\]\.category: expected 1\.\.5, got 6"):
        load_locomo(_write(tmp_path, "x.json", bad))
    bad = copy.deepcopy(data)
    del bad[1]["qa"][0]["answer"]  # only category 5 may lack an answer
    with pytest.raises(DataError, match=r"qa\[0\]\.answer: missing key"):
        load_locomo(_write(tmp_path, "x.json", bad))


def test_malformed_longmemeval_and_timedial(tmp_path):
    data = json.loads(LME.read_text())
    bad = copy.deepcopy(data)
    bad[2]["haystack_dates"][1] = "2023/13/02 (Fri) 19:10"
    with pytest.raises(
        DataError,
        match=r"x\.json: record 2 \(question_id '6a1eabeb'\): haystack_dates\[1\]: "
        r"unparsable date '2023/13/02",
    ):
        load_longmemeval(_write(tmp_path, "x.json", bad))
    bad = copy.deepcopy(data)
    bad[1]["haystack_dates"].pop()
    with pytest.raises(
        DataError,
        match=r"record 1 .*haystack_sessions: lengths differ: 3 haystack_session_ids, "
        r"2 haystack_dates",
    ):
        load_longmemeval(_write(tmp_path, "x.json", bad))
    bad = copy.deepcopy(data)
    del bad[0]["haystack_sessions"][1][0]["content"]
    with pytest.raises(DataError, match=r"record 0 .*haystack_sessions\[1\]\[0\]\.content: missing key"):
        load_longmemeval(_write(tmp_path, "x.json", bad))

    td = json.loads(TD_VERL.read_text())
    bad = copy.deepcopy(td)
    bad[1]["extra_info"]["all_sessions"][2]["session_time"] = "last Tuesday"
    with pytest.raises(
        DataError,
        match=r"record 1 \(index 'b71e0d44'\): extra_info\.all_sessions\[2\]\.session_time: "
        r"unparsable date 'last Tuesday'",
    ):
        load_timedial(_write(tmp_path, "x.json", bad))
    bad = copy.deepcopy(td)
    del bad[3]["reward_model"]["ground_truth"]["answer"]
    with pytest.raises(
        DataError, match=r"record 3 \(index 'c0d3e5f7'\): reward_model\.ground_truth\.answer: missing"
    ):
        load_timedial(_write(tmp_path, "x.json", bad))
    bad = copy.deepcopy(td)
    bad[0]["prompt"][0]["content"] = "Answer the question."
    with pytest.raises(DataError, match=r"record 0 .*prompt: no '\*\*User Question:\*\*'"):
        load_timedial(_write(tmp_path, "x.json", bad))
    with pytest.raises(DataError, match=r"record 0: neither a verl record"):
        load_timedial(_write(tmp_path, "x.json", [{"foo": 1}]))


def test_file_level_errors(tmp_path):
    with pytest.raises(DataError, match=r"nope\.json: no such file"):
        load_locomo(tmp_path / "nope.json")
    with pytest.raises(DataError, match=r"e\.json: contains no records"):
        load_longmemeval(_write(tmp_path, "e.json", []))
    with pytest.raises(DataError, match=r"s\.json: expected a JSON list of records .*got string"):
        load_locomo(_write(tmp_path, "s.json", '"hello"'))
    with pytest.raises(DataError, match=r"n\.json: record 1: expected object, got integer 3"):
        load_locomo(_write(tmp_path, "n.json", [json.loads(LOCOMO_QUIRKS.read_text())[0], 3]))
    (tmp_path / "b.json").write_bytes(b'[{"sample_id": "\xff"}]')
    with pytest.raises(DataError, match=r"b\.json: not UTF-8"):
        load_locomo(tmp_path / "b.json")
    lines = [json.dumps(r) for r in json.loads(LME.read_text())]
    (tmp_path / "l.jsonl").write_text("\n".join(lines[:2] + ['{"question_id": "x",'] + lines[2:]) + "\n")
    with pytest.raises(DataError, match=r"l\.jsonl:3: invalid JSON"):
        load_longmemeval(tmp_path / "l.jsonl")
    (tmp_path / "ok.jsonl").write_text("\n".join(lines) + "\n")
    assert len(load_longmemeval(tmp_path / "ok.jsonl")) == 5
    with pytest.raises(
        DataError,
        match=r"w\.json: record 0: question_id: missing key; not a LongMemEval record\? "
        r"it has keys \['conversation', 'qa', 'sample_id'\]",
    ):
        load_longmemeval(_write(tmp_path, "w.json", json.loads(LOCOMO_QUIRKS.read_text())[:1]))
    (tmp_path / "p.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match=r"p\.parquet: not a readable Parquet file"):
        load_timedial(tmp_path / "p.parquet")
    with pytest.raises(DataError, match="unknown format 'csv'"):
        load("csv", LME)


# ---- fuzz: malformed input raises DataError and nothing else -------------------------------------------
_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-3, 40)
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "",
            "D1:3",
            "D",
            "D:1:3; D2:05",
            "unknown",
            "session_2",
            "Level 1",
            "yes",
            "A",
            "1:56 pm on 8 May, 2023",
            "2023/05/30 (Tue) 23:40",
            "2020-04-02T14:03:00",
            "2021-01-01",
            "**User Question:**\n1: q\n\n***session memory:** \n2020-01-01T00:00:00: <3> \n",
        ]
    )
)
_json = st.recursive(
    _leaves,
    lambda ch: st.lists(ch, max_size=4) | st.dictionaries(st.text(max_size=8), ch, max_size=4),
    max_leaves=16,
)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _mutate(obj, path, value, delete):
    if not path:
        return value
    parent = obj
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return obj


FUZZ_TARGETS = {
    "locomo": (LOCOMO_QUIRKS, lambda p: load_locomo(p)),
    "longmemeval": (LME, lambda p: load_longmemeval(p)),
    "timedial": (TD_VERL, lambda p: load_timedial(p)),
    "timedial_questions": (
        TD_QUESTIONS,
        lambda p: load_timedial(p, contexts=TD_CONTEXTS, time_ranges=TD_RANGES),
    ),
    "timedial_contexts": (
        TD_CONTEXTS,
        lambda p: load_timedial(TD_QUESTIONS, contexts=p, time_ranges=TD_RANGES),
    ),
}
_FUZZ_DIR = Path(tempfile.mkdtemp(prefix="memrl-fuzz-"))  # hypothesis does not mix with tmp_path
atexit.register(shutil.rmtree, _FUZZ_DIR, True)


def _check_loader_contract(loader, obj):
    path = _FUZZ_DIR / "input.json"
    path.write_text(json.dumps(obj))
    try:
        convs = loader(path)
    except DataError as e:
        assert str(path) in str(e) or "contexts" in str(e) or "time_range" in str(e)
        return
    for c in convs:  # whatever loads must be valid common schema and JSON-serialisable
        assert Conversation.from_dict(json.loads(json.dumps(c.to_dict()))) == c


@pytest.mark.parametrize("target", sorted(FUZZ_TARGETS))
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_mutated_records_raise_only_data_error(target, data):
    fixture, loader = FUZZ_TARGETS[target]
    obj = json.loads(fixture.read_text())
    paths = list(_paths(obj))
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        paths = list(_paths(obj))
        path = data.draw(st.sampled_from(paths), label="path")
        delete = bool(path) and isinstance(path[-1], str) and data.draw(st.booleans(), label="delete")
        obj = _mutate(obj, path, None if delete else data.draw(_json, label="value"), delete)
    _check_loader_contract(loader, obj)


@pytest.mark.parametrize("fmt", sorted(LOADERS))
@settings(max_examples=80, deadline=None)
@given(value=_json)
def test_fuzz_random_json_raise_only_data_error(fmt, value):
    _check_loader_contract(LOADERS[fmt], value)


# ---- commands ------------------------------------------------------------------------------------------
def test_convert_and_stats_cli(tmp_path, capsys):
    out = tmp_path / "out" / "quirks.jsonl"
    assert (
        commands.main(["convert", "--format", "locomo", "--input", str(LOCOMO_QUIRKS), "--output", str(out)])
        == 0
    )
    printed = capsys.readouterr().out
    assert f"wrote 2 conversations to {out}" in printed and "category 5 adversarial" in printed
    assert read_conversations(out) == load_locomo(LOCOMO_QUIRKS)
    assert commands.main(["stats", str(out), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["conversations"], s["sessions"], s["turns"], s["questions"]) == (2, 4, 32, 13)
    assert s["questions_by_category"]["1 multi_hop"] == 3

    # a datasets directory when --output ends with "/" (and again over the existing one)
    ds = tmp_path / "ds"
    for _ in range(2):
        assert (
            commands.main(["convert", "--format", "longmemeval", "--input", str(LME), "--output", f"{ds}/"])
            == 0
        )
    assert read_hf(ds) == load_longmemeval(LME) and "LongMemEval" in (ds / "README.md").read_text()
    assert commands.stats(ds)["questions"] == 5
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp dirs left

    summary = commands.convert("timedial", TD_QUESTIONS, tmp_path / "td.jsonl", contexts=TD_CONTEXTS)
    assert summary["questions"] == 5 and summary["format"] == "timedial"
    assert summary["questions_by_category"]["Level 1 Extract"] == 1


def test_cli_errors_exit_2_and_write_nothing(tmp_path, capsys):
    bad = _write(tmp_path, "bad.json", LOCOMO_QUIRKS.read_text()[:500])
    out = tmp_path / "o.jsonl"
    with pytest.raises(SystemExit) as e:
        commands.main(["convert", "--format", "locomo", "--input", str(bad), "--output", str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "bad.json: invalid JSON at line" in err
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]

    out.write_text("previous\n")  # a failed conversion leaves an existing output untouched
    with pytest.raises(SystemExit):
        commands.main(
            ["convert", "--format", "longmemeval", "--input", str(LOCOMO_QUIRKS), "--output", str(out)]
        )
    assert out.read_text() == "previous\n"
    assert "question_id: missing key" in capsys.readouterr().err

    with pytest.raises(SystemExit) as e:
        commands.main(["stats", str(tmp_path / "missing.jsonl")])
    assert e.value.code == 2 and "missing.jsonl: no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        commands.main(
            [
                "convert",
                "--format",
                "locomo",
                "--input",
                str(LOCOMO_QUIRKS),
                "--output",
                str(out),
                "--contexts",
                str(TD_CONTEXTS),
            ]
        )
    assert e.value.code == 2 and "only to --format timedial" in capsys.readouterr().err
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("x")
    with pytest.raises(SystemExit):
        commands.main(["convert", "--format", "locomo", "--input", str(LOCOMO_QUIRKS), "--output", str(keep)])
    assert "refusing to replace" in capsys.readouterr().err and (keep / "notes.txt").exists()
    with pytest.raises(SystemExit) as e:  # argparse: unknown format
        commands.main(["convert", "--format", "csv", "--input", "x", "--output", "y"])
    assert e.value.code == 2


def test_add_parser_mounts_on_a_parent_cli(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="memrl")
    sub = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(sub)
    args = parser.parse_args(
        [
            "data",
            "convert",
            "--format",
            "timedial",
            "--input",
            str(TD_VERL),
            "--output",
            str(tmp_path / "td.jsonl"),
            "--json",
        ]
    )
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["conversations"] == 5


def test_module_entry_point(tmp_path):
    out = tmp_path / "c.jsonl"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "memrl.data.commands",
            "convert",
            "--format",
            "longmemeval",
            "--input",
            str(LME),
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stderr
    assert "questions      5" in r.stdout and len(out.read_text().splitlines()) == 5
    r = subprocess.run(
        [sys.executable, "-m", "memrl.data.commands", "stats", str(tmp_path / "none.jsonl")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert r.returncode == 2 and r.stderr.startswith("error: ")


def test_timedial_ground_truth_without_selected_sessions_falls_back_to_extra_info(tmp_path):
    # Found by the fuzz test: a missing optional list used to crash with a TypeError instead of falling back.
    records = json.loads(TD_VERL.read_text())
    del records[0]["reward_model"]["ground_truth"]["selected_sessions"]
    path = tmp_path / "td.json"
    path.write_text(json.dumps(records))
    q = load_timedial(path)[0].questions[0]
    assert q.evidence_session_ids == ["session_2"]  # from extra_info.gold_selected_sessions


def test_split_questions_deals_every_question_once_stratified_and_seeded(conv26_path, tmp_path):
    from collections import Counter

    from memrl.data.loaders import load_conversations
    from memrl.data.question_split import (
        parse_fractions,
        shared_questions,
        split_questions,
        write_question_split,
    )
    from memrl.data.schema import DataError

    convs = load_conversations(conv26_path, "locomo")
    parts = split_questions(convs, {"train": 0.6, "validation": 0.4}, seed=0, skip_categories=["5"])
    ids = {k: [q.question_id for c in v for q in c.questions] for k, v in parts.items()}
    kept = [q for q in convs[0].questions if q.category_id != 5]
    assert not set(ids["train"]) & set(ids["validation"])
    assert shared_questions(parts["train"], parts["validation"]) == []  # what memrl demo checks for data=<dir>
    leak = parts["train"][0].questions[0]
    moved = dataclasses.replace(leak, question_id="new-id", question="  " + leak.question.upper() + " ")
    for q in (leak, moved):  # the same id, or the same question (case, spacing aside) in the same conversation
        held = [dataclasses.replace(parts["validation"][0], questions=[*parts["validation"][0].questions, q])]
        assert shared_questions(parts["train"], held) == [q.question_id]
    assert sorted(ids["train"] + ids["validation"]) == sorted(q.question_id for q in kept)
    for cat, n in Counter(q.category_id for q in kept).items():  # each slice has the category mix of the whole
        n_train = sum(q.category_id == cat for c in parts["train"] for q in c.questions)
        assert abs(n_train - 0.6 * n) <= 1
    assert parts["train"][0].sessions == convs[0].sessions  # the dialogue is the environment: kept whole
    again = split_questions(convs, {"train": 0.6, "validation": 0.4}, seed=0, skip_categories=["5"])
    other = split_questions(convs, {"train": 0.6, "validation": 0.4}, seed=1, skip_categories=["5"])
    assert [q.question_id for q in again["train"][0].questions] == ids["train"]
    assert [q.question_id for q in other["train"][0].questions] != ids["train"]
    summary = write_question_split(convs, tmp_path, {"train": 0.6, "validation": 0.4}, 0, ["5"])
    assert load_conversations(tmp_path, split="validation")[0].questions[0].question_id in ids["validation"]
    assert summary["slices"]["train"]["questions"] == len(ids["train"])
    for bad in ("train=0.6", "train=0.6,validation=0.6", "train=x,validation=1"):
        with pytest.raises(DataError, match="--fractions"):
            parse_fractions(bad)
