"""memrl synth: determinism, knob validation, semantic truth of answers/evidence/gold ops, splits, resume, Ray,
and leave-one-out distillation on synthetic data and on LoCoMo conv-26."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import re
from pathlib import Path

import pytest

from memrl.data.io import read_conversations, read_hf
from memrl.data.schema import ABSTAIN_ANSWER, Conversation
from memrl.data_synth.config import SynthConfig
from memrl.data_synth.distill import (
    EvidenceTurn,
    _score,
    distill,
    distill_conversation,
    heuristic_reader,
)
from memrl.data_synth.paraphrase import accept_paraphrase
from memrl.data_synth.synth import (
    SynthError,
    conversation_line,
    run_synthesis,
    split_assignment,
    synthesize_conversation,
)
from memrl.data_synth.time_expressions import format_date, period, resolve_time_expression
from memrl.memory.bank import MemoryBank
from memrl.memory.ops import Op

OUTPUTS = ("train.jsonl", "validation.jsonl", "test.jsonl", "stats.json")


def small_cfg(out, **kw) -> SynthConfig:
    base = {"out": str(out), "num_conversations": 12, "seed": 7, "sessions_per_conversation": [3, 6],
            "turns_per_session": [8, 14], "shard_size": 4, "questions_per_conversation": 20}
    base.update(kw)
    return SynthConfig(**base).validate()


def digests(out: Path) -> dict[str, str]:
    return {name: hashlib.sha256((out / name).read_bytes()).hexdigest() for name in OUTPUTS}


@pytest.fixture(scope="module")
def convs() -> list[Conversation]:
    """A varied in-memory sample: default sizes, mid-conversation questions, three speakers, no relative dates."""
    out = []
    for cfg, n in [(SynthConfig(seed=1, mid_conversation_question_rate=0.5), 12),
                   (SynthConfig(seed=2, speakers=3, sessions_per_conversation=[4, 8], change_rate=0.8,
                                correct_rate=0.5, retract_rate=0.5), 8),
                   (SynthConfig(seed=3, relative_time_rate=0.0, sessions_per_conversation=[2, 3]), 6)]:
        out += [synthesize_conversation(cfg.validate(), i) for i in range(n)]
    return out


# ---- config ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("knob,value", [
    ("num_conversations", -1), ("num_conversations", 0), ("questions_per_conversation", -5), ("change_rate", 1.5), ("retract_rate", -0.1),
    ("distractor_rate", 2.0), ("sessions_per_conversation", [5, 2]), ("turns_per_session", [0, 3]),
    ("question_mix", {"single_hop": 0.5, "temporal": 0.4}), ("question_mix", {"single_hop": 0.5, "trivia": 0.5}),
    ("split_fractions", {"train": 0.9, "validation": 0.2, "test": 0.0}), ("executor", "spark"),
])
def test_invalid_knobs_are_rejected_naming_the_knob(knob, value):
    with pytest.raises(ValueError, match=knob):
        SynthConfig(**{knob: value}).validate()


def test_cli_rejects_bad_and_unknown_knobs(tmp_path, capsys):
    from memrl.cli import main

    assert main(["synth", "--config", "configs/synth/default.yaml", f"out={tmp_path}", "change_rate=1.5"]) == 2
    assert "change_rate" in capsys.readouterr().err
    assert main(["synth", f"out={tmp_path}", "chnage_rate=0.1"]) == 2
    assert "chnage_rate" in capsys.readouterr().err
    assert not (tmp_path / "shards").exists()


def test_default_yaml_matches_the_dataclass_defaults():
    from memrl.config import load_config

    assert load_config(SynthConfig, "configs/synth/default.yaml", ["out=data/synth"]) == SynthConfig()


# ---- determinism, splits, resume, Ray -------------------------------------------------------------------
def test_same_config_and_seed_give_byte_identical_output(tmp_path):
    run_synthesis(small_cfg(tmp_path / "a"), log=None)
    run_synthesis(small_cfg(tmp_path / "b"), log=None)
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    run_synthesis(small_cfg(tmp_path / "c", seed=8), log=None)
    assert digests(tmp_path / "c")["train.jsonl"] != digests(tmp_path / "a")["train.jsonl"]


def test_splits_are_disjoint_and_the_hf_copy_matches(tmp_path):
    cfg = small_cfg(tmp_path, num_conversations=20)
    stats = run_synthesis(cfg, log=None)
    ids = {s: [c.conversation_id for c in read_conversations(tmp_path / f"{s}.jsonl")]
           for s in ("train", "validation", "test")}
    flat = [i for v in ids.values() for i in v]
    assert len(flat) == len(set(flat)) == 20
    assert [len(ids[s]) for s in ("train", "validation", "test")] == [16, 2, 2]
    for s, want in ids.items():
        assert [c.conversation_id for c in read_hf(tmp_path / "hf", s)] == want
    assert stats["conversations"] == 20 and sum(v["conversations"] for v in stats["splits"].values()) == 20
    card = (tmp_path / "README.md").read_text()
    assert "## Config" in card and "num_conversations: 20" in card and "| 8 | conflict_resolution |" in card
    assert set(split_assignment(cfg).values()) == {"train", "validation", "test"}


def test_resume_after_interruption_completes_without_duplicates(tmp_path):
    cfg = small_cfg(tmp_path)
    run_synthesis(cfg, log=None)
    want = digests(tmp_path)
    shards = tmp_path / "shards"
    (shards / "shard-00001.jsonl").unlink()  # a shard the interrupted run never finished ...
    (shards / ".shard-00002.jsonl.x1y2.tmp").write_text('{"half a line')  # ... and one it was writing
    (shards / "shard-00002.jsonl").unlink()
    before = (shards / "shard-00000.jsonl").stat().st_mtime_ns
    run_synthesis(cfg, log=None)
    assert (shards / "shard-00000.jsonl").stat().st_mtime_ns == before  # complete shards are not redone
    assert not list(shards.glob(".*.tmp"))
    assert digests(tmp_path) == want
    ids = [c.conversation_id for s in ("train", "validation", "test") for c in read_conversations(tmp_path / f"{s}.jsonl")]
    assert len(ids) == len(set(ids)) == cfg.num_conversations


def test_reusing_an_out_dir_with_other_knobs_is_refused(tmp_path):
    run_synthesis(small_cfg(tmp_path), log=None)
    with pytest.raises(SynthError, match="change_rate"):
        run_synthesis(small_cfg(tmp_path, change_rate=0.9), log=None)
    run_synthesis(small_cfg(tmp_path, change_rate=0.9, overwrite=True), log=None)
    assert digests(tmp_path) == (run_synthesis(small_cfg(tmp_path / "x", change_rate=0.9), log=None) and
                                 digests(tmp_path / "x"))


@pytest.mark.slow
def test_ray_output_is_identical_to_local(tmp_path, ray_executor):
    run_synthesis(small_cfg(tmp_path / "local"), log=None)
    run_synthesis(small_cfg(tmp_path / "ray", executor="ray", num_workers=2), executor=ray_executor, log=None)
    assert digests(tmp_path / "ray") == digests(tmp_path / "local")


def test_fast_serializer_equals_to_dict(convs):
    for c in convs[:3]:
        assert conversation_line(c) == json.dumps(c.to_dict(), ensure_ascii=False)
        assert Conversation.from_dict(json.loads(conversation_line(c))) == c


# ---- semantic truth --------------------------------------------------------------------------------------
def _entry(bank, ids, key):
    assert key in ids, f"no gold ADD for {key}"
    return bank.get(ids[key])


def _time_of_text(text: str, anchor: str):
    ref = resolve_time_expression(text, anchor[:10])
    assert ref is not None, f"no date in {text!r}"
    return ref


class ReplayError(ValueError):
    """A gold op did not apply (a bug in the generator)."""


def replay_gold_ops(conv: Conversation, until: str | None = None) -> tuple[MemoryBank, dict[str, str]]:
    """The oracle of these tests: `conv.gold_ops` applied to a MemoryBank in order, each stamped with its
    session's timestamp. Stops before the first session after `until` (a question time), so the bank holds
    what a perfect manager knew when the question was asked. Returns the bank and world key -> bank id.
    """
    bank = MemoryBank()
    times = {t.turn_id: s.timestamp for s in conv.sessions for t in s.turns}
    ids: dict[str, str] = {}
    for g in conv.gold_ops:
        time = times.get(g.turn_id)
        if until is not None and time is not None and time > until:
            break
        if g.op == "NOOP":
            continue
        owner = g.entry.split("/", 1)[0] if "/" in g.entry else None
        if g.op == "ADD":
            op = Op("ADD", text=g.text, event_time=g.event_time)
        elif g.entry not in ids:
            raise ReplayError(f"{conv.conversation_id} {g.turn_id}: {g.op} of {g.entry!r} before its ADD")
        elif g.op == "UPDATE":
            op = Op("UPDATE", id=ids[g.entry], text=g.text, event_time=g.event_time)
        else:
            op = Op("DELETE", id=ids[g.entry])
        result = bank.apply([op], time=time, source_turn_ids=[g.turn_id], owner=owner, keys={0: g.entry})
        if result.rejected:
            raise ReplayError(f"{conv.conversation_id} {g.turn_id}: {g.op} {g.entry!r} rejected: "
                              f"{result.rejected[0].reason}")
        if g.op == "ADD":
            ids[g.entry] = result.applied[0][1]
    return bank, ids


def _check_answer_derivable(c: Conversation, q, bank, ids):
    """The gold answer follows from the replayed bank (up to the question time) alone."""
    kind, ans, keys = q.meta["kind"], q.answer, q.meta.get("entry")
    low = ans.lower()
    if q.category == "adversarial":
        assert ans == ABSTAIN_ANSWER
        subject = q.meta["subject"]
        if kind == "unknown_person":
            assert not any(e["owner"] == subject for e in bank.to_dict()["entries"])
        return
    if q.category == "history":
        e = _entry(bank, ids, keys)
        closed = [v for v in bank.history(e.id) if v.valid_to is not None and v.valid_to <= q.question_time]
        assert any(low in v.text.lower() for v in closed), (q.question, ans, bank.history(e.id))
        return
    if kind in ("ended", "still"):
        e = _entry(bank, ids, keys)
        assert (ans == "No") == (e.valid_to is not None), (q.question, e)
        return
    if kind == "list" or kind == "pair":
        texts = [_entry(bank, ids, k).text.lower() for k in keys]
        assert all(_entry(bank, ids, k).is_current for k in keys)
        for part in ans.split(", "):
            assert any(part.lower() in t for t in texts), (q.question, ans, texts)
        return
    if kind == "city_at_event":
        e = _entry(bank, ids, keys[1])
        at = dict(bank.as_of(q.meta["event_time"] + "T12:00:00")).get(e.id)
        assert at is not None and low in at.text.lower(), (q.question, ans, bank.history(e.id))
        return
    if kind in ("first", "before_after", "days_between"):
        e1, e2 = (_entry(bank, ids, k) for k in keys)
        r1, r2 = (_time_of_text(e.text, q.question_time) for e in (e1, e2))
        (a1, b1), (a2, b2) = period(r1), period(r2)
        if kind == "days_between":
            days = abs((dt.date.fromisoformat(r1.date) - dt.date.fromisoformat(r2.date)).days)
            assert ans == f"{days} day" + ("s" if days != 1 else "")
        elif kind == "before_after":
            assert ans == ("before" if b1 < a2 else "after") and (b1 < a2 or b2 < a1)
        else:
            first = e1 if b1 < a2 else e2
            assert ans.split("'s ")[0] == first.owner
        return
    # single values: the current entry for the key states the answer
    e = _entry(bank, ids, keys)
    assert e.is_current and low in e.text.lower(), (q.question, ans, e.text)


def _check_evidence(c: Conversation, q, index):
    kind, keys = q.meta["kind"], q.meta.get("entry")
    keys = [keys] if isinstance(keys, str) else (keys or [])
    if q.category == "adversarial":
        assert q.evidence_turn_ids == []
        text = " ".join(t.text for _, t in c.turns()).lower()
        words = set(re.findall(r"[a-z0-9'-]+", text))
        for kw in q.meta["keywords"]:
            kw = kw.lower()
            assert (kw not in text) if " " in kw else (kw not in words and kw + "s" not in words), (q.question, kw)
        return
    assert q.evidence_turn_ids, q.question
    for tid in q.evidence_turn_ids:
        s, t = index[tid]
        assert s.timestamp <= q.question_time
        assert set(t.meta.get("facts", [])) & set(keys), (q.question, tid, t.meta)
        for m in t.meta["mentions"]:
            assert m.lower() in t.text.lower()
    assert q.evidence_session_ids == list(dict.fromkeys(index[t][0].session_id for t in q.evidence_turn_ids))
    texts = [index[t][1].text.lower() for t in q.evidence_turn_ids]
    if kind in ("when", "corrected_date") or (kind == "current" and re.match(r"\d|[A-Z][a-z]+ \d{4}", q.answer)):
        dated = [format_date(resolve_time_expression(index[t][1].text, index[t][0].timestamp))
                 for t in q.evidence_turn_ids if resolve_time_expression(index[t][1].text, index[t][0].timestamp)]
        assert q.answer in dated, (q.question, q.answer, texts)
    elif kind in ("value", "detail", "trip_city", "current", "corrected_value", "before_change", "ended",
                  "list", "pair", "city_at_event", "duration") and q.answer not in ("Yes", "No") \
            and not re.match(r"\d+ [A-Z]|[A-Z][a-z]+ \d{4}$", q.answer):
        for part in q.answer.split(", ") if kind in ("list", "pair") else [q.answer]:
            assert any(part.lower() in t for t in texts), (q.question, q.answer, texts)


def test_gold_answers_follow_from_the_replayed_gold_ops(convs):
    checked = 0
    for c in convs:
        replay_gold_ops(c)  # every op applies (raises on a rejected one)
        for q in c.questions:
            bank, ids = replay_gold_ops(c, until=q.question_time)
            _check_answer_derivable(c, q, bank, ids)
            checked += 1
    cats = {q.category for c in convs for q in c.questions}
    assert cats == {"single_hop", "multi_hop", "temporal", "knowledge_update", "history", "adversarial",
                    "conflict_resolution"}
    assert checked > 500


def test_evidence_turns_state_the_fact_and_adversarial_is_unanswerable(convs):
    for c in convs:
        index = c.turn_index()
        for q in c.questions:
            _check_evidence(c, q, index)


def test_time_expressions_resolve_to_the_recorded_dates(convs):
    n = 0
    for c in convs:
        for s, t in c.turns():
            for te in t.meta.get("time_expressions", []):
                ref = resolve_time_expression(t.text, s.timestamp)
                assert (ref.date, ref.granularity) == (te["date"], te["granularity"]), (t.text, s.timestamp, te)
                n += 1
            if not t.meta.get("time_expressions"):
                assert resolve_time_expression(t.text, s.timestamp) is None, t.text
    assert n > 100


def test_gold_ops_cover_every_turn_and_never_leak_into_text(convs):
    for c in convs:
        op_turns = [o.turn_id for o in c.gold_ops]
        assert list(dict.fromkeys(op_turns)) == [t.turn_id for _, t in c.turns()]
        for s, t in c.turns():
            assert not re.search(r"\b(ADD|UPDATE|DELETE|NOOP)\b", t.text)
            if t.meta["kind"] != "fact":
                assert [(o.op, o.entry) for o in c.gold_ops if o.turn_id == t.turn_id] == [("NOOP", "")]
        live: set[str] = set()
        for o in c.gold_ops:  # a repeat (NOOP on an entry), UPDATE or DELETE targets a live entry
            if o.entry:
                assert (o.op == "ADD") == (o.entry not in live), (o, c.conversation_id)
                live.add(o.entry) if o.op != "DELETE" else live.discard(o.entry)
            if o.op in ("ADD", "UPDATE"):
                assert o.text and o.text.startswith(o.entry.split("/")[0] + (" " if "'" not in o.text.split()[0] else "'"))


def test_question_times_follow_evidence_and_mix(convs):
    c = convs[0]
    last = c.sessions[-1].timestamp[:10]
    mids = [q for cv in convs[:12] for q in cv.questions if q.question_time[:10] != cv.sessions[-1].timestamp[:10]]
    assert mids, "mid-conversation questions expected at mid_conversation_question_rate=0.5"
    assert any(q.question_time.startswith(last) for q in c.questions)
    cats = [q.category for q in c.questions]
    assert cats.count("single_hop") >= 6  # 0.2 * 40 when enough candidates exist


# ---- distillation ----------------------------------------------------------------------------------------
def test_heuristic_reader_answers_from_evidence_without_the_gold():
    ev = [EvidenceTurn("D1:1", "Ana", "Guess what? I ran a half marathon last Tuesday!", "2023-05-11T10:00:00"),
          EvidenceTurn("D1:2", "Ben", "My cousin Nico lives in Lyon now.", "2023-05-11T10:00:00"),
          EvidenceTurn("D2:3", "Ana", "Big news: I just moved to Porto!", "2023-06-01T10:00:00")]
    assert heuristic_reader("When did Ana run a half marathon?", ev) == "9 May 2023"
    assert heuristic_reader("Where does Ana live now?", ev[2:]) == "Porto"
    assert heuristic_reader("What is Zelda's blood type?", ev) == ABSTAIN_ANSWER


def test_distill_synthetic_gives_locally_minimal_sufficient_sets(convs):
    c = Conversation.from_dict(json.loads(conversation_line(convs[0])))
    distill_conversation(c, heuristic_reader, threshold=0.5)
    index = c.turn_index()
    ok = [q for q in c.questions if q.meta["loo"]["status"] == "ok"]
    answerable = [q for q in c.questions if q.category != "adversarial"]
    assert len(ok) >= 0.5 * len(answerable), [q.meta["loo"] for q in c.questions]
    shrunk = 0
    for q in ok:
        assert q.minimal_evidence and set(q.minimal_evidence) <= set(q.evidence_turn_ids)
        shrunk += len(q.minimal_evidence) < len(q.evidence_turn_ids)
        ev = [EvidenceTurn(t, index[t][1].speaker, index[t][1].text, index[t][0].timestamp) for t in q.minimal_evidence]
        assert _score(heuristic_reader(q.question, ev), q) >= 0.5
        for drop in range(len(ev)):  # removing any one turn of a minimal set breaks the answer
            if len(ev) > 1:
                assert _score(heuristic_reader(q.question, ev[:drop] + ev[drop + 1:]), q) < 0.5
    assert shrunk > 0
    for q in c.questions:
        if q.category == "adversarial":
            assert q.minimal_evidence == [] and q.meta["loo"]["status"] == "abstention"


def test_distill_runs_on_converted_locomo(conv26_path):
    from memrl.data.loaders import load_locomo

    conv = load_locomo(conv26_path)[0]
    out, summary = distill([conv], reader="heuristic", threshold=0.5)
    qs = out[0].questions
    assert summary["questions"] == len(qs) == 199
    assert summary["status"].get("ok", 0) >= 20, summary
    for q in qs:
        if q.meta["loo"]["status"] == "ok":
            assert q.minimal_evidence and set(q.minimal_evidence) <= set(q.evidence_turn_ids)
        if q.category_id == 5:
            assert q.minimal_evidence == []
    # without gold evidence, candidates come from BM25 over [question; answer]
    conv.questions = [dataclasses.replace(q, evidence_turn_ids=[]) for q in conv.questions[:15]]
    out, summary = distill([conv], reader="heuristic", candidates="bm25", top_k=8)
    assert all(q.meta["loo"]["source"] == "bm25@8" for q in out[0].questions)
    assert summary["status"].get("ok", 0) >= 1, summary


def test_cli_synth_then_distill(tmp_path, capsys):
    from memrl.cli import main

    out = tmp_path / "ds"
    assert main(["synth", "--config", "configs/synth/default.yaml", f"out={out}", "num_conversations=3",
                 "sessions_per_conversation=[2,3]", "questions_per_conversation=10"]) == 0
    assert json.loads(capsys.readouterr().out)["conversations"] == 3
    assert main(["synth", "distill", "--input", str(out), "--output", str(tmp_path / "min.jsonl")]) == 0
    got = read_conversations(tmp_path / "min.jsonl")
    assert len(got) == 3 and all("loo" in q.meta for c in got for q in c.questions)


# ---- paraphrase acceptance -------------------------------------------------------------------------------
def test_paraphrase_must_keep_values_dates_and_adversarial_absence():
    meta = {"mentions": ["ran a half marathon"],
            "time_expressions": [{"text": "last Tuesday", "date": "2023-05-09", "granularity": "day"}]}
    orig, when = "Guess what? I ran a half marathon last Tuesday!", "2023-05-11T10:00:00"
    assert accept_paraphrase(orig, "So last Tuesday I ran a half marathon, can you believe it?", meta, when)
    assert not accept_paraphrase(orig, "Last Tuesday I ran a marathon!", meta, when)  # value lost
    assert not accept_paraphrase(orig, "Yesterday I ran a half marathon!", meta, when)  # date changed
    assert not accept_paraphrase(orig, "I ran a half marathon last Tuesday in my new shoes!", meta, when,
                                 forbidden=["shoe"])  # would answer an adversarial question
    assert not accept_paraphrase(orig, "", meta, when)
    plain = {"mentions": ["Porto"]}
    assert accept_paraphrase("I live in Porto.", "Porto is home for me.", plain, when)
    assert not accept_paraphrase("I live in Porto.", "I moved to Porto yesterday.", plain, when)  # gains a date


# ---- generation-backend paths, on the real tiny model (untrained: they must run and reject its output) -----
def test_paraphraser_keeps_facts_on_a_real_backend(tiny_model_dir):
    from memrl.data_synth.paraphrase import Paraphraser
    from memrl.policies.backends import make_backend

    cfg = small_cfg("unused", sessions_per_conversation=[2, 2], turns_per_session=[6, 6])
    conv = synthesize_conversation(cfg, 0)
    before = {t.turn_id: t.text for _, t in conv.turns()}
    ops = list(conv.gold_ops)
    result = Paraphraser(make_backend(f"transformers:{tiny_model_dir}", batch_size=8), batch_size=8,
                         max_tokens=12).paraphrase(conv, seed=1)
    assert result["tried"] == sum(t.meta["kind"] == "fact" for _, t in conv.turns()) > 0
    index = conv.turn_index()
    for tid, text in before.items():
        s, t = index[tid]
        if t.meta.get("paraphrased"):
            assert accept_paraphrase(text, t.text, t.meta, s.timestamp)
        else:
            assert t.text == text
    assert conv.gold_ops == ops
    for q in conv.questions:
        _check_evidence(conv, q, index)


def test_distill_with_a_generation_reader_and_judge(tiny_model_dir, convs):
    from memrl.policies.backends import make_backend
    from memrl.policies.judge import make_judge

    c = Conversation.from_dict(json.loads(conversation_line(convs[0])))
    c.questions = c.questions[:2]
    out, summary = distill([c], reader=f"transformers:{tiny_model_dir}", judge=f"transformers:{tiny_model_dir}",
                           make_backend=make_backend, make_judge=make_judge)
    assert summary["questions"] == 2 and sum(summary["status"].values()) == 2
    assert all(q.meta["loo"]["status"] in ("ok", "reader_failed", "abstention") for q in out[0].questions)
    with pytest.raises(ValueError, match="reader"):
        distill([c], reader="magic")
