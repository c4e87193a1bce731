"""LoCoMo (snap-research/LoCoMo, e.g. locomo10.json) -> the common schema.

This module owns the LoCoMo format: `load_locomo` (sessions from the `session_<n>` lists, the
"1:56 pm on 8 May, 2023" dates, image turns, the category-5 adversarial questions), `LOCOMO_CATEGORIES`
(the data's integer -> name mapping) and `clean_locomo_evidence` (the release's evidence-id quirks). Reading
records and checking values is `common`'s; the choices made are stated in `load_locomo`'s docstring.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from memrl.data.loaders.common import NONE, Where, answer_text, parse_time, record_id, unique_conversations
from memrl.data.schema import ABSTAIN_ANSWER, Conversation, Question, Session, Turn

__all__ = ["LOCOMO_CATEGORIES", "LOCOMO_DATE_FORMAT", "clean_locomo_evidence", "load_locomo"]

# The integer mapping is NOT the paper's listing order (benchmarks.md 1.3); Mem0's evaluation uses another.
LOCOMO_CATEGORIES: dict[int, str] = {
    1: "multi_hop",
    2: "temporal",
    3: "open_domain",
    4: "single_hop",
    5: "adversarial",
}
LOCOMO_DATE_FORMAT = "%I:%M %p on %d %B, %Y"  # "1:56 pm on 8 May, 2023"
_LOCOMO_SESSION_KEY = re.compile(r"session_(\d{1,6})")
_LOCOMO_DATE_KEY = re.compile(r"(session_\d{1,6})_date_time")
_LOCOMO_EVIDENCE_ID = re.compile(r"D:?(\d{1,6}):(\d{1,6})", re.IGNORECASE)


def clean_locomo_evidence(raw: list[str], known_turn_ids: set[str] | dict) -> tuple[list[str], list[str]]:
    """Split, canonicalise and resolve LoCoMo evidence ids; return (turn ids, unresolved tokens).

    Handles the release's quirks: several ids in one string ("D8:6; D9:17", "D9:1 D4:4 D4:6"), a stray
    colon ("D:11:26" -> "D11:26") and leading zeros ("D30:05" -> "D30:5"). Tokens that are not an id
    ("D") or name no turn of the conversation (conv-42 "D10:19") come back as written, in order, once each.
    """
    ids: list[str] = []
    unresolved: list[str] = []
    for item in raw:
        for token in re.split(r"[;,\s]+", item.strip()):
            if not token:
                continue
            m = _LOCOMO_EVIDENCE_ID.fullmatch(token)
            canonical = f"D{int(m.group(1))}:{int(m.group(2))}" if m else None
            if canonical is not None and canonical in known_turn_ids:
                if canonical not in ids:
                    ids.append(canonical)
            elif token not in unresolved:
                unresolved.append(token)
    return ids, unresolved


def load_locomo(path: str | Path) -> list[Conversation]:
    """Load LoCoMo's original JSON (a list of conversation objects like locomo10.json, or one object).

    - Sessions come from the `session_<n>` lists (conv-26 has date keys up to session_35 but turns only
      for 19 sessions); `session_id` = "session_<n>", `index` = n. Date keys without turns, and empty
      turn lists, are listed in `conversation.meta["sessions_without_turns"]`.
    - Timestamps: "%I:%M %p on %d %B, %Y" -> naive ISO; the raw string is in `session.meta["date_time_raw"]`.
    - Turn ids are the data's `dia_id`; images become turn.meta `image_caption` (blip_caption), `img_url`
      and `image_query`.
    - Questions: id "<sample_id>:q<i>" (i = position in `qa`), category = name per LOCOMO_CATEGORIES and
      category_id = the integer; integer answers cast to str. Category 5 gets answer ABSTAIN_ANSWER with
      `adversarial_answer` (the distractor) in meta, and `raw_answer` for the 2 items that also carry an
      answer. Evidence is cleaned by `clean_locomo_evidence`; `meta["evidence_raw"]` keeps the original when
      cleaning changed it and `meta["evidence_unresolved"]` the tokens that name no turn.
    - The data has no question time: question_time = the last session's timestamp, flagged with
      `meta["question_time_is_inferred"] = True`.
    - event_summary, observation and session_summary (generated annotations) are dropped.
    """
    return unique_conversations(Path(path), _locomo_conversation, "sample_id")



def _locomo_conversation(rec: dict, where: Where, path: Path) -> Conversation:
    sample_id = record_id(rec, "sample_id", where, "LoCoMo")
    where = where.named(f"sample_id {sample_id!r}")
    conv = where.get(rec, "conversation", (dict,))
    speakers = [where.get(conv, k, (str,), f"conversation.{k}") for k in ("speaker_a", "speaker_b")]

    numbered = sorted((int(m.group(1)), key) for key in conv if (m := _LOCOMO_SESSION_KEY.fullmatch(key)))
    sessions: list[Session] = []
    without_turns: set[str] = set()
    turn_index: dict[str, Session] = {}
    for n, key in numbered:
        raw_turns = where.check(conv[key], (list,), f"conversation.{key}")
        date_key = f"{key}_date_time"
        date_raw = where.get(conv, date_key, (str, NONE), f"conversation.{date_key}", default=None)
        timestamp = (
            parse_time(date_raw, LOCOMO_DATE_FORMAT, where, f"conversation.{date_key}") if date_raw else None
        )
        if not raw_turns:
            without_turns.add(key)
            continue
        session = Session(
            session_id=key,
            index=n,
            timestamp=timestamp,
            turns=[],
            meta={"date_time_raw": date_raw} if date_raw else {},
        )
        for k, t in enumerate(raw_turns):
            session.turns.append(_locomo_turn(t, where, f"conversation.{key}[{k}]"))
            tid = session.turns[-1].turn_id
            if tid in turn_index:
                raise where.fail(f"conversation.{key}[{k}].dia_id", f"duplicate turn id {tid!r}")
            turn_index[tid] = session
        sessions.append(session)
    for key in conv:
        if (m := _LOCOMO_DATE_KEY.fullmatch(key)) and m.group(1) not in conv:
            without_turns.add(m.group(1))

    times = [s.timestamp for s in sessions if s.timestamp]
    question_time = max(times) if times else None
    qa = where.get(rec, "qa", (list,))
    questions = [
        _locomo_question(q, i, sample_id, turn_index, question_time, where) for i, q in enumerate(qa)
    ]

    meta: dict[str, Any] = {"benchmark": "locomo", "source": path.name}
    if without_turns:
        meta["sessions_without_turns"] = sorted(without_turns, key=lambda s: int(s.rsplit("_", 1)[1]))
    return Conversation(
        conversation_id=sample_id, speakers=speakers, sessions=sessions, questions=questions, meta=meta
    )


def _locomo_turn(t: Any, where: Where, field: str) -> Turn:
    where.check(t, (dict,), field)
    meta: dict[str, Any] = {}
    caption = where.get(t, "blip_caption", (str, NONE), f"{field}.blip_caption", default=None)
    if caption:
        meta["image_caption"] = caption
    urls = where.get(t, "img_url", (list, str, NONE), f"{field}.img_url", default=None)
    if urls:
        urls = [urls] if isinstance(urls, str) else urls
        for i, u in enumerate(urls):
            where.check(u, (str,), f"{field}.img_url[{i}]")
        meta["img_url"] = list(urls)
    query = where.get(t, "query", (str, NONE), f"{field}.query", default=None)
    if query:
        meta["image_query"] = query
    return Turn(
        turn_id=where.get(t, "dia_id", (str,), f"{field}.dia_id"),
        speaker=where.get(t, "speaker", (str,), f"{field}.speaker"),
        text=where.get(t, "text", (str,), f"{field}.text"),
        meta=meta,
    )


def _locomo_question(
    q: Any, i: int, sample_id: str, turn_index: dict[str, Session], question_time: str | None, where: Where
) -> Question:
    field = f"qa[{i}]"
    where.check(q, (dict,), field)
    text = where.get(q, "question", (str,), f"{field}.question")
    cat = where.get(q, "category", (int,), f"{field}.category")
    if cat not in LOCOMO_CATEGORIES:
        raise where.fail(f"{field}.category", f"expected 1..5, got {cat}")
    evidence_raw = where.str_list(q, "evidence", f"{field}.evidence", default=[])
    meta: dict[str, Any] = {}
    if cat == 5:
        # The release's category 5 has the distractor in `adversarial_answer` and (444 of 446) no `answer`;
        # the expected reply is an abstention (benchmarks.md 1.5).
        answer = ABSTAIN_ANSWER
        adversarial = where.get(
            q, "adversarial_answer", (str, int, float, NONE), f"{field}.adversarial_answer", default=None
        )
        if adversarial is not None:
            meta["adversarial_answer"] = answer_text(adversarial)
        raw = where.get(q, "answer", (str, int, float, NONE), f"{field}.answer", default=None)
        if raw is not None:
            meta["raw_answer"] = answer_text(raw)
    else:
        answer = answer_text(where.get(q, "answer", (str, int, float), f"{field}.answer"))
    turn_ids, unresolved = clean_locomo_evidence(evidence_raw, turn_index)
    if turn_ids != evidence_raw:
        meta["evidence_raw"] = list(evidence_raw)
    if unresolved:
        meta["evidence_unresolved"] = unresolved
    sessions = {turn_index[t].session_id: turn_index[t].index for t in turn_ids}
    meta["question_time_is_inferred"] = True
    return Question(
        question_id=f"{sample_id}:q{i}",
        question=text,
        answer=answer,
        category=LOCOMO_CATEGORIES[cat],
        category_id=cat,
        evidence_turn_ids=turn_ids,
        evidence_session_ids=sorted(sessions, key=sessions.__getitem__),
        question_time=question_time,
        meta=meta,
    )
