"""The common data schema every loader writes and every other part reads.

One conversation per JSONL line. Field names follow DESIGN.md section 3; `to_dict`/`from_dict` are the
only (de)serialisers so that JSONL and Hugging Face `datasets` rows stay the same shape.

Times are naive ISO 8601 strings ("2023-05-08T13:56:00"): benchmarks give wall-clock dates without zones,
and comparing strings of one format is both simple and correct for ordering.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from memrl.errors import MemrlError

# The abstention answer LoCoMo's category 5 expects; also what the `abstain` baseline says.
ABSTAIN_ANSWER = "Not mentioned in the conversation"


class DataError(MemrlError, ValueError):
    """Malformed input data. The message names the file and the line or record (re-exported by memrl.data.io)."""

    exit_code = 2


class SchemaError(ValueError):
    """A record does not match the schema. The message names the field."""


@dataclass
class Turn:
    turn_id: str  # "D<session index>:<1-based position>" as in LoCoMo
    speaker: str
    text: str
    meta: dict[str, Any] = field(default_factory=dict)  # image_caption, has_answer, utterance_date, events ...


@dataclass
class Session:
    session_id: str  # "session_<index>"
    index: int  # 1-based, chronological
    timestamp: str | None  # ISO 8601, naive; None when the source has no date
    turns: list[Turn] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Question:
    question_id: str
    question: str
    answer: str
    category: str  # a name: "single_hop", "temporal", ... (source-specific names are kept as given)
    category_id: int | str | None = None  # the source's own number/label (LoCoMo 1..5, LongMemEval type, ...)
    evidence_turn_ids: list[str] = field(default_factory=list)
    evidence_session_ids: list[str] = field(default_factory=list)
    question_time: str | None = None  # ISO 8601; when the question is asked
    time_range: list[str | None] | None = None  # [start, end] ISO 8601 for temporal questions
    minimal_evidence: list[str] | None = None  # leave-one-out mined minimal sufficient turn ids
    options: dict[str, str] | None = None  # multiple-choice options, letter -> text
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class GoldOp:
    """One memory operation a perfect manager would issue after a turn (synthetic data only).

    `entry` is a stable key of the memory entry in the synthetic world (e.g. "Ana/city"), not a bank id:
    bank ids depend on the manager's own history, the world's keys do not.
    """

    turn_id: str
    op: str  # ADD | UPDATE | DELETE | NOOP
    entry: str
    text: str | None = None
    event_time: str | None = None


@dataclass
class Conversation:
    conversation_id: str
    speakers: list[str]
    sessions: list[Session] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)
    gold_ops: list[GoldOp] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)  # benchmark name, source file, unresolved evidence ...

    # ---- convenience views -------------------------------------------------------------------------
    def turns(self) -> list[tuple[Session, Turn]]:
        return [(s, t) for s in self.sessions for t in s.turns]

    def turn_index(self) -> dict[str, tuple[Session, Turn]]:
        return {t.turn_id: (s, t) for s, t in self.turns()}

    @property
    def num_turns(self) -> int:
        return sum(len(s.turns) for s in self.sessions)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Conversation":
        return _conversation_from_dict(d)


# ---- strict deserialisation ---------------------------------------------------------------------------
def _build(klass, d: Any, where: str):
    if not isinstance(d, dict):
        raise SchemaError(f"{where}: expected an object, got {type(d).__name__}")
    names = {f.name: f for f in dataclasses.fields(klass)}
    unknown = set(d) - set(names)
    if unknown:
        raise SchemaError(f"{where}: unknown field(s) {sorted(unknown)} for {klass.__name__}")
    missing = [
        n
        for n, f in names.items()
        if n not in d and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise SchemaError(f"{where}: missing field(s) {missing} for {klass.__name__}")
    return d


def _expect(value, types, where):
    if not isinstance(value, types):
        names = types.__name__ if isinstance(types, type) else "/".join(t.__name__ for t in types)
        raise SchemaError(f"{where}: expected {names}, got {type(value).__name__} ({value!r:.60})")
    return value


def _conversation_from_dict(d: dict[str, Any]) -> Conversation:
    _build(Conversation, d, "conversation")
    cid = _expect(d["conversation_id"], str, "conversation.conversation_id")
    where = f"conversation {cid!r}"
    sessions = []
    for i, s in enumerate(_expect(d.get("sessions", []), list, f"{where}.sessions")):
        sw = f"{where}.sessions[{i}]"
        _build(Session, s, sw)
        turns = []
        for j, t in enumerate(_expect(s.get("turns", []), list, f"{sw}.turns")):
            tw = f"{sw}.turns[{j}]"
            _build(Turn, t, tw)
            turns.append(
                Turn(
                    turn_id=_expect(t["turn_id"], str, f"{tw}.turn_id"),
                    speaker=_expect(t["speaker"], str, f"{tw}.speaker"),
                    text=_expect(t["text"], str, f"{tw}.text"),
                    meta=_expect(t.get("meta") or {}, dict, f"{tw}.meta"),
                )
            )
        sessions.append(
            Session(
                session_id=_expect(s["session_id"], str, f"{sw}.session_id"),
                index=_expect(s["index"], int, f"{sw}.index"),
                timestamp=_expect(s["timestamp"], (str, type(None)), f"{sw}.timestamp"),
                turns=turns,
                meta=_expect(s.get("meta") or {}, dict, f"{sw}.meta"),
            )
        )
    questions = []
    for i, q in enumerate(_expect(d.get("questions", []), list, f"{where}.questions")):
        qw = f"{where}.questions[{i}]"
        _build(Question, q, qw)
        questions.append(
            Question(
                question_id=_expect(q["question_id"], str, f"{qw}.question_id"),
                question=_expect(q["question"], str, f"{qw}.question"),
                answer=_expect(q["answer"], str, f"{qw}.answer"),
                category=_expect(q["category"], str, f"{qw}.category"),
                category_id=_expect(q.get("category_id"), (int, str, type(None)), f"{qw}.category_id"),
                evidence_turn_ids=list(_expect(q.get("evidence_turn_ids") or [], list, f"{qw}.evidence_turn_ids")),
                evidence_session_ids=list(
                    _expect(q.get("evidence_session_ids") or [], list, f"{qw}.evidence_session_ids")
                ),
                question_time=_expect(q.get("question_time"), (str, type(None)), f"{qw}.question_time"),
                time_range=_expect(q.get("time_range"), (list, type(None)), f"{qw}.time_range"),
                minimal_evidence=_expect(q.get("minimal_evidence"), (list, type(None)), f"{qw}.minimal_evidence"),
                options=_expect(q.get("options"), (dict, type(None)), f"{qw}.options"),
                meta=_expect(q.get("meta") or {}, dict, f"{qw}.meta"),
            )
        )
    ops = []
    for i, o in enumerate(_expect(d.get("gold_ops", []) or [], list, f"{where}.gold_ops")):
        ow = f"{where}.gold_ops[{i}]"
        _build(GoldOp, o, ow)
        op = _expect(o["op"], str, f"{ow}.op")
        if op not in ("ADD", "UPDATE", "DELETE", "NOOP"):
            raise SchemaError(f"{ow}.op: expected ADD/UPDATE/DELETE/NOOP, got {op!r}")
        ops.append(
            GoldOp(
                turn_id=_expect(o["turn_id"], str, f"{ow}.turn_id"),
                op=op,
                entry=_expect(o["entry"], str, f"{ow}.entry"),
                text=_expect(o.get("text"), (str, type(None)), f"{ow}.text"),
                event_time=_expect(o.get("event_time"), (str, type(None)), f"{ow}.event_time"),
            )
        )
    return Conversation(
        conversation_id=cid,
        speakers=list(_expect(d["speakers"], list, f"{where}.speakers")),
        sessions=sessions,
        questions=questions,
        gold_ops=ops,
        meta=_expect(d.get("meta") or {}, dict, f"{where}.meta"),
    )
