"""LongMemEval (xiaowu0162/LongMemEval: oracle, S or M) -> the common schema.

This module owns the LongMemEval format: `load_longmemeval` gives one Conversation per question record, its
haystack sessions sorted by their "2023/05/30 (Tue) 23:40" dates, evidence from answer_session_ids and
has_answer, and the abstention / preference-rubric flags. Reading records and checking values is `common`'s;
the choices made are stated in `load_longmemeval`'s docstring.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

from memrl.data.loaders.common import (
    NONE,
    Where,
    answer_text,
    record_id,
    speakers_in_order,
    unique_conversations,
)
from memrl.data.schema import Conversation, Question, Session, Turn

__all__ = ["load_longmemeval"]

# "2023/05/30 (Tue) 23:40"; the weekday is redundant and not checked.
_LME_DATE = re.compile(r"(\d{4})/(\d{1,2})/(\d{1,2})\s*(?:\(\w{2,9}\))?\s*(\d{1,2}):(\d{2})")


def _lme_time(raw: str, where: Where, field: str) -> str:
    m = _LME_DATE.fullmatch(raw.strip())
    try:
        if m is None:
            raise ValueError
        return datetime(*(int(g) for g in m.groups())).isoformat()
    except (ValueError, OverflowError):
        raise where.fail(field, f"unparsable date {raw!r} (expected like '2023/05/30 (Tue) 23:40')") from None


def load_longmemeval(path: str | Path) -> list[Conversation]:
    """Load LongMemEval (oracle, S or M: a list of question records, each with its own haystack).

    - One Conversation per question record: conversation_id = question_id, speakers = the roles.
    - Sessions are zip(haystack_session_ids, haystack_dates, haystack_sessions) sorted by date (the oracle
      file is not sorted; ties keep file order); session_id "session_<i>" with i the chronological position,
      the source id in `session.meta["original_session_id"]`, the raw date in `meta["date_raw"]`.
    - Turns: speaker = role, text = content, turn_id "D<i>:<k>", `meta["has_answer"]` where the source has it.
    - Question: category = question_type as given and category_id = None (the type has no number). The
      30 `_abs` questions keep their type as category (the official script reports them inside their type
      and again as "abstention accuracy") and carry `meta["abstention"] = True`; preference questions'
      answers are rubrics (`meta["answer_is_rubric"] = True`).
    - Evidence: sessions from answer_session_ids (ids not in the haystack go to meta["evidence_unresolved"]),
      turns from has_answer. question_time = question_date.
    """
    return unique_conversations(Path(path), _lme_conversation, "question_id")


def _lme_conversation(rec: dict, where: Where, path: Path) -> Conversation:
    qid = record_id(rec, "question_id", where, "LongMemEval")
    where = where.named(f"question_id {qid!r}")
    qtype = where.get(rec, "question_type", (str,))
    text = where.get(rec, "question", (str,))
    answer = answer_text(where.get(rec, "answer", (str, int, float)))
    question_time = _lme_time(where.get(rec, "question_date", (str,)), where, "question_date")
    ids = where.str_list(rec, "haystack_session_ids", "haystack_session_ids")
    dates = where.str_list(rec, "haystack_dates", "haystack_dates")
    hay = where.get(rec, "haystack_sessions", (list,))
    if not len(ids) == len(dates) == len(hay):
        raise where.fail(
            "haystack_sessions",
            f"lengths differ: {len(ids)} haystack_session_ids, "
            f"{len(dates)} haystack_dates, {len(hay)} haystack_sessions",
        )
    answer_ids = where.str_list(rec, "answer_session_ids", "answer_session_ids", default=[])

    dated = [(_lme_time(d, where, f"haystack_dates[{j}]"), j) for j, d in enumerate(dates)]
    sessions: list[Session] = []
    evidence_turns: list[str] = []
    for i, (timestamp, j) in enumerate(sorted(dated), start=1):
        raw_turns = where.check(hay[j], (list,), f"haystack_sessions[{j}]")
        session = Session(
            session_id=f"session_{i}",
            index=i,
            timestamp=timestamp,
            turns=[],
            meta={"original_session_id": ids[j], "date_raw": dates[j]},
        )
        for k, t in enumerate(raw_turns, start=1):
            field = f"haystack_sessions[{j}][{k - 1}]"
            where.check(t, (dict,), field)
            has_answer = where.get(t, "has_answer", (bool, NONE), f"{field}.has_answer", default=None)
            turn = Turn(
                turn_id=f"D{i}:{k}",
                speaker=where.get(t, "role", (str,), f"{field}.role"),
                text=where.get(t, "content", (str,), f"{field}.content"),
                meta={} if has_answer is None else {"has_answer": has_answer},
            )
            session.turns.append(turn)
            if has_answer:
                evidence_turns.append(turn.turn_id)
        sessions.append(session)

    by_original: dict[str, list[str]] = {}
    for s in sessions:
        by_original.setdefault(s.meta["original_session_id"], []).append(s.session_id)
    evidence_sessions = [sid for a in dict.fromkeys(answer_ids) for sid in by_original.get(a, [])]
    meta: dict[str, Any] = {}
    unresolved = [a for a in dict.fromkeys(answer_ids) if a not in by_original]
    if unresolved:
        meta["evidence_unresolved"] = unresolved
    if qid.endswith("_abs"):
        meta["abstention"] = True
    if qtype == "single-session-preference":
        meta["answer_is_rubric"] = True
    question = Question(
        question_id=qid,
        question=text,
        answer=answer,
        category=qtype,
        category_id=None,
        evidence_turn_ids=evidence_turns,
        evidence_session_ids=sorted(dict.fromkeys(evidence_sessions), key=lambda s: int(s.split("_")[1])),
        question_time=question_time,
        meta=meta,
    )
    return Conversation(
        conversation_id=qid,
        speakers=speakers_in_order(sessions) or ["user", "assistant"],
        sessions=sessions,
        questions=[question],
        meta={"benchmark": "longmemeval", "source": path.name},
    )
