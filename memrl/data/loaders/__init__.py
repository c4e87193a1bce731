"""Benchmark loaders: LoCoMo, LongMemEval and TIME-Dial (Memory-T1's verl format) -> the common schema.

Each loader reads one file and returns `list[Conversation]`; `LOADERS` maps the CLI's format names to
them. Formats and quirks follow the sources (snap-research/LoCoMo, xiaowu0162/LongMemEval, Memory-T1's TIME-Dial); the
choices made here are stated in each loader's docstring.

Every problem with the input raises `memrl.data.io.DataError` whose message names the file, the record
(its position and, once known, its id) and the field, e.g.
    locomo10.json: record 3 (sample_id 'conv-43'): qa[17].category: expected integer, got string '4'
Nothing else escapes for malformed input: loaders check every type before using a value, because a
KeyError or TypeError three calls deep tells a user nothing about which of 2,000 records is broken.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from memrl.data.io import DataError, iter_jsonl, read_conversations
from memrl.data.schema import ABSTAIN_ANSWER, Conversation, Question, Session, Turn
from memrl.data.validate import validate_conversations

__all__ = [
    "LOADERS",
    "LOCOMO_CATEGORIES",
    "TIMEDIAL_ANSWER_FORMATS",
    "TIMEDIAL_LEVELS",
    "clean_locomo_evidence",
    "FORMATS",
    "load",
    "load_conversations",
    "load_locomo",
    "load_longmemeval",
    "load_timedial",
]

_MISSING = object()
_NONE = type(None)
_TYPE_NAMES = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "list",
    dict: "object",
    _NONE: "null",
}


# ---- reading files and checking raw values -------------------------------------------------------------
class _Where:
    """A record's position in the input, for error messages ("file: record 3 (sample_id 'x'): field: ...")."""

    def __init__(self, path: Path, record: str):
        self.path, self.record = path, record

    def named(self, label: str) -> "_Where":
        return _Where(self.path, f"{self.record} ({label})")

    def fail(self, field: str, problem: str) -> DataError:
        return DataError(f"{self.path}: {self.record}: {field + ': ' if field else ''}{problem}")

    def check(self, value: Any, types: tuple[type, ...], field: str) -> Any:
        # bool is an int subclass; `"category": true` is a broken record, not category 1.
        ok = isinstance(value, types) and (bool in types or not isinstance(value, bool))
        if not ok:
            want = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
            raise self.fail(field, f"expected {want}, got {_describe(value)}")
        return value

    def get(
        self, obj: dict, key: str, types: tuple[type, ...], field: str | None = None, default: Any = _MISSING
    ):
        field = field or key
        if key not in obj:
            if default is _MISSING:
                raise self.fail(field, "missing key")
            return default
        return self.check(obj[key], types, field)

    def str_list(self, obj: dict, key: str, field: str, default: Any = _MISSING) -> list[str]:
        value = self.get(obj, key, (list,), field, default)
        if value is None:  # a missing optional list: the caller's default (None) is returned as is
            return value
        for i, item in enumerate(value):
            self.check(item, (str,), f"{field}[{i}]")
        return value


def _record_id(rec: dict, key: str, where: _Where, benchmark: str) -> str:
    """The record's id; when missing, say which keys the record does have (usually: the wrong --format)."""
    if key not in rec:
        raise where.fail(key, f"missing key; not a {benchmark} record? it has keys {sorted(rec)[:8]}")
    return str(where.check(rec[key], (str, int), key))


def _describe(value: Any) -> str:
    name = _TYPE_NAMES.get(type(value), type(value).__name__)
    if isinstance(value, (dict, list)):
        return f"{name} of length {len(value)}"
    text = repr(value)
    return f"{name} {text[:60] + '...' if len(text) > 60 else text}"


def _read_json(path: Path) -> Any:
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a JSON file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (bad byte at offset {e.start})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        # A JSON document of records ends with "]" or "}"; anything else is most likely a cut-off download.
        truncated = e.pos >= len(text.rstrip()) or not text.rstrip().endswith(("]", "}"))
        hint = " (the file looks truncated)" if truncated else ""
        raise DataError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}{hint}") from None
    except RecursionError:
        raise DataError(f"{path}: invalid JSON: nested too deeply") from None


def _read_records(path: Path) -> list[tuple[_Where, Any]]:
    """Records of a benchmark file: a JSON list (or one object), JSONL (`.jsonl`) or Parquet (`.parquet`)."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        records = [(_Where(path, f"line {n}"), obj) for n, obj in iter_jsonl(path)]
    elif suffix == ".parquet":
        records = [(_Where(path, f"row {i}"), row) for i, row in enumerate(_read_parquet(path))]
    else:
        data = _read_json(path)
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list):
            raise DataError(
                f"{path}: expected a JSON list of records (or one record object), got {_describe(data)}"
            )
        records = [(_Where(path, f"record {i}"), rec) for i, rec in enumerate(data)]
    if not records:
        raise DataError(f"{path}: contains no records")
    for where, rec in records:
        where.check(rec, (dict,), "")
    return records


def _read_parquet(path: Path) -> list[dict]:
    # verl keeps its RL data as Parquet (Memory-T1's convert_to_parquet.py); pyarrow reads it without
    # executing anything from the file.
    import pyarrow
    import pyarrow.parquet as pq

    if not path.exists():
        raise DataError(f"{path}: no such file")
    try:
        return pq.read_table(path).to_pylist()
    except (pyarrow.ArrowException, OSError) as e:
        raise DataError(f"{path}: not a readable Parquet file: {e}") from None


def _parse_time(raw: str, fmt: str, where: _Where, field: str) -> str:
    try:
        return datetime.strptime(raw.strip(), fmt).isoformat()
    except (ValueError, OverflowError):
        example = datetime(2023, 5, 8, 13, 56).strftime(fmt)
        raise where.fail(field, f"unparsable date {raw!r} (expected like {example!r})") from None


def _parse_iso(raw: str) -> str | None:
    """Naive ISO 8601 of an ISO date/datetime string; None for '', 'unknown' or anything unparsable."""
    text = raw.strip()
    if not text or text.lower() == "unknown":
        return None
    try:
        return datetime.fromisoformat(text).replace(tzinfo=None).isoformat()
    except ValueError:
        return None


def _answer_text(value: Any) -> str:
    # 6 LoCoMo answers and some LongMemEval answers are JSON numbers (2022, 3); the schema holds strings.
    return value if isinstance(value, str) else str(value)


def _speakers_in_order(sessions: list[Session]) -> list[str]:
    return list(dict.fromkeys(t.speaker for s in sessions for t in s.turns))


# ---- LoCoMo -----------------------------------------------------------------------------------------------
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
    return _unique_conversations(Path(path), _locomo_conversation, "sample_id")


def _unique_conversations(path: Path, build, id_field: str) -> list[Conversation]:
    """One Conversation per record of `path`; a repeated id is an error naming the record."""
    convs: list[Conversation] = []
    records: list[str] = []
    seen: set[str] = set()
    for where, rec in _read_records(path):
        conv = build(rec, where, path)
        if conv.conversation_id in seen:
            raise where.fail(id_field, f"duplicate {id_field} {conv.conversation_id!r}")
        seen.add(conv.conversation_id)
        convs.append(conv)
        records.append(where.record)
    return validate_conversations(convs, str(path), records)


def _locomo_conversation(rec: dict, where: _Where, path: Path) -> Conversation:
    sample_id = _record_id(rec, "sample_id", where, "LoCoMo")
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
        date_raw = where.get(conv, date_key, (str, _NONE), f"conversation.{date_key}", default=None)
        timestamp = (
            _parse_time(date_raw, LOCOMO_DATE_FORMAT, where, f"conversation.{date_key}") if date_raw else None
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


def _locomo_turn(t: Any, where: _Where, field: str) -> Turn:
    where.check(t, (dict,), field)
    meta: dict[str, Any] = {}
    caption = where.get(t, "blip_caption", (str, _NONE), f"{field}.blip_caption", default=None)
    if caption:
        meta["image_caption"] = caption
    urls = where.get(t, "img_url", (list, str, _NONE), f"{field}.img_url", default=None)
    if urls:
        urls = [urls] if isinstance(urls, str) else urls
        for i, u in enumerate(urls):
            where.check(u, (str,), f"{field}.img_url[{i}]")
        meta["img_url"] = list(urls)
    query = where.get(t, "query", (str, _NONE), f"{field}.query", default=None)
    if query:
        meta["image_query"] = query
    return Turn(
        turn_id=where.get(t, "dia_id", (str,), f"{field}.dia_id"),
        speaker=where.get(t, "speaker", (str,), f"{field}.speaker"),
        text=where.get(t, "text", (str,), f"{field}.text"),
        meta=meta,
    )


def _locomo_question(
    q: Any, i: int, sample_id: str, turn_index: dict[str, Session], question_time: str | None, where: _Where
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
            q, "adversarial_answer", (str, int, float, _NONE), f"{field}.adversarial_answer", default=None
        )
        if adversarial is not None:
            meta["adversarial_answer"] = _answer_text(adversarial)
        raw = where.get(q, "answer", (str, int, float, _NONE), f"{field}.answer", default=None)
        if raw is not None:
            meta["raw_answer"] = _answer_text(raw)
    else:
        answer = _answer_text(where.get(q, "answer", (str, int, float), f"{field}.answer"))
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


# ---- LongMemEval -------------------------------------------------------------------------------------------
# "2023/05/30 (Tue) 23:40"; the weekday is redundant and not checked.
_LME_DATE = re.compile(r"(\d{4})/(\d{1,2})/(\d{1,2})\s*(?:\(\w{2,9}\))?\s*(\d{1,2}):(\d{2})")


def _lme_time(raw: str, where: _Where, field: str) -> str:
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
    return _unique_conversations(Path(path), _lme_conversation, "question_id")


def _lme_conversation(rec: dict, where: _Where, path: Path) -> Conversation:
    qid = _record_id(rec, "question_id", where, "LongMemEval")
    where = where.named(f"question_id {qid!r}")
    qtype = where.get(rec, "question_type", (str,))
    text = where.get(rec, "question", (str,))
    answer = _answer_text(where.get(rec, "answer", (str, int, float)))
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
            has_answer = where.get(t, "has_answer", (bool, _NONE), f"{field}.has_answer", default=None)
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
        speakers=_speakers_in_order(sessions) or ["user", "assistant"],
        sessions=sessions,
        questions=[question],
        meta={"benchmark": "longmemeval", "source": path.name},
    )


# ---- TIME-Dial (Memory-T1) ---------------------------------------------------------------------------------
# TIME benchmark taxonomy (Wei et al., arXiv 2505.12891; benchmarks.md 2.2). verl records carry only the task.
TIMEDIAL_LEVELS: dict[str, str] = {
    "Localization": "Level 1",
    "Duration_Compare": "Level 1",
    "Order_Compare": "Level 1",
    "Computation": "Level 1",
    "Extract": "Level 1",
    "Explicit_Reasoning": "Level 2",
    "Order_Reasoning": "Level 2",
    "Relative_Reasoning": "Level 2",
    "Counterfactual": "Level 3",
    "Co_temporality": "Level 3",
    "Timeline": "Level 3",
}
# How a gold answer is written and scored (benchmarks.md 2.2 / 6.3); everything else is one option letter.
TIMEDIAL_ANSWER_FORMATS: dict[str, str] = {
    "Extract": "multi_choice",
    "Localization": "time",
    "Computation": "duration",
    "Timeline": "sequence",
}

# Prompt layout of Memory-T1's build_cot_prompt: "**User Question:**\n<datetime.now()>: <question>\n\n
# ***session memory:** \n<history>\n\n**Expected Response:** ..."
_T1_QUESTION = re.compile(
    r"\*\*User Question:\*\*[ \t]*\n(?P<question>.*?)\n\n\*\*\*session memory:\*\*[ \t]*\n?"
    r"(?P<history>.*?)(?:\n\*\*Expected Response:\*\*|\Z)",
    re.S,
)
_T1_NOW_PREFIX = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?: ")
_ISO = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?"
# verl converter: "<session_time>: <session_6> \n India: <utterance_time>: text\n Debra: <time>: text\n"
_T1_HEADER = re.compile(rf"(?P<time>{_ISO}|\S*): <(?P<sid>[^<>\s]+)>\s*")
_T1_UTTERANCE = re.compile(rf" ?(?P<speaker>[^:\n]+?): (?P<time>{_ISO}): (?P<text>.*)")
# eval scripts: "<session_time>: <6>, India Brown <time> : text" then "Debra Ryan <time> : text"
_T1_EVAL_HEADER = re.compile(
    rf"(?P<stime>{_ISO}): <(?P<sid>[^<>\s]+)>, (?P<speaker>.+?) (?P<time>{_ISO}) : (?P<text>.*)"
)
_T1_EVAL_UTTERANCE = re.compile(rf"(?P<speaker>\S.*?) (?P<time>{_ISO}) : (?P<text>.*)")
_OPTION_LINE = re.compile(r"\s*([A-H])\s*[.)]\s*(.*?)\s*")


def _session_key(raw: Any) -> str:
    """Memory-T1 names sessions "session_<id>" in gold lists and "<session_<id>>" or "<id>" in prompts."""
    text = str(raw).strip().strip("<>")
    return text if text.startswith("session_") else f"session_{text}"


def _parse_options(question: str) -> tuple[str, dict[str, str] | None]:
    """Split "stem\\nA. x\\nB. y" into (stem, {"A": "x", "B": "y"}); no options unless A, B, ... in order."""
    lines = question.split("\n")
    first = next(
        (i for i, line in enumerate(lines) if (m := _OPTION_LINE.fullmatch(line)) and m.group(1) == "A"), None
    )
    if first is None:
        return question.strip(), None
    options: dict[str, str] = {}
    for line in lines[first:]:
        m = _OPTION_LINE.fullmatch(line)
        if m and m.group(1) == chr(ord("A") + len(options)):
            options[m.group(1)] = m.group(2)
        elif options and line.strip():  # an option's text wrapped onto the next line
            last = list(options)[-1]
            options[last] = f"{options[last]} {line.strip()}".strip()
    if len(options) < 2:
        return question.strip(), None
    return "\n".join(lines[:first]).strip(), options


def _parse_t1_history(history: str) -> list[dict[str, Any]]:
    """Session blocks of a Memory-T1 prompt (fallback when a record has no extra_info.all_sessions)."""
    sessions: list[dict[str, Any]] = []
    for line in history.split("\n"):
        if m := _T1_EVAL_HEADER.fullmatch(line):
            sessions.append(
                {
                    "id": _session_key(m["sid"]),
                    "time": m["stime"],
                    "relevant": None,
                    "utterances": [
                        {
                            "speaker": m["speaker"],
                            "text": m["text"],
                            "time": m["time"],
                            "event_time": None,
                            "relevant": None,
                        }
                    ],
                }
            )
        elif m := _T1_HEADER.fullmatch(line):
            sessions.append(
                {"id": _session_key(m["sid"]), "time": m["time"], "relevant": None, "utterances": []}
            )
        elif sessions and ((m := _T1_UTTERANCE.fullmatch(line)) or (m := _T1_EVAL_UTTERANCE.fullmatch(line))):
            sessions[-1]["utterances"].append(
                {
                    "speaker": m["speaker"].strip(),
                    "text": m["text"],
                    "time": m["time"],
                    "event_time": None,
                    "relevant": None,
                }
            )
        elif sessions and sessions[-1]["utterances"] and line.strip():
            sessions[-1]["utterances"][-1]["text"] += "\n" + line.strip()  # a newline inside an utterance
    return sessions


def _yes_no(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("yes", "no"):
        return value.strip().lower() == "yes"
    return None


def _time_range(raw: dict | None, where: _Where, field: str) -> tuple[list[str | None] | None, dict]:
    """[start, end] naive ISO from {"start","end"}; "unknown" (3,340 of 4,716 starts) -> None.

    The ranges were annotated by an LLM, so an unparsable bound becomes None with the raw value kept in
    meta rather than failing the whole file. A date-only end means the end of that day.
    """
    if raw is None:
        return None, {}
    start = where.get(raw, "start", (str, _NONE), f"{field}.start", default=None)
    end = where.get(raw, "end", (str, _NONE), f"{field}.end", default=None)
    bounds = [_parse_iso(start) if start else None, _parse_iso(end) if end else None]
    if end and bounds[1] and len(end.strip()) == 10:
        bounds[1] = bounds[1][:10] + "T23:59:59"
    meta = {"time_range_raw": {"start": start, "end": end}} if [start, end] != bounds else {}
    return (bounds if any(bounds) else None), meta


def load_timedial(
    path: str | Path, contexts: str | Path | None = None, time_ranges: str | Path | None = None
) -> list[Conversation]:
    """Load TIME-Dial as Memory-T1 prepares it for RL (verl records), or its question file plus contexts.

    The real files (time_dial_context_list_with_evidence_200_v2.json, time_dial_labeled_contexts.json and
    the verl JSON/Parquet built from them) were not available; this follows Memory-T1's converter
    (temporal_reasoning/convert_to_verl_v2.py @ fee86f5) and benchmarks.md 2.3, and the fixtures in
    tests/fixtures/timedial_* are written to that layout. What was inferred:

    - verl record: {data_source, prompt: [{role, content}], ability: Task, reward_model: {ground_truth:
      {answer, selected_sessions}, style}, extra_info: {index: Question ID, gold_selected_sessions,
      question_time_range: {start, end}, all_sessions: [{session_id: "session_<id>", session_time,
      is_relevant: "yes"|"no", utterances: [{speaker, text, utterance_time, event_time: {start, end},
      is_relevant}]}]}}. Parquet rows may hold extra_info (and ground_truth) as JSON strings.
    - Sessions come from extra_info.all_sessions (the whole context). Only when it is missing are they
      parsed from the prompt's session blocks, which hold just the sessions that fit the token budget.
      Either way `question.meta["prompt_session_ids"]` lists the sessions the prompt showed.
    - The question is the text after "**User Question:**\\n<timestamp>: " in the prompt; that timestamp is
      the converter's datetime.now(), not data, so question_time stays None and the range is time_range.
      (The converter writes 2021-01-01..2025-12-31 for a question with no annotated range; that default
      cannot be told apart from a real range and is kept as given.)
    - Question file form (`contexts` given): [{"Question ID", "Question", "Gold Answer", "Task", "Level",
      "Context", "Dataset Name", "Evidence": [{session_id, utterance, ...}]}] with contexts
      {Context: {session_id: {session_date, content: [{speaker, utterance, utterance_date, events}]}}};
      evidence utterances are matched by text as the converter does. `time_ranges` is the optional
      question_time_range_annotated JSON keyed by question id.

    Mapping: one Conversation per question (conversation_id = question id); sessions sorted by time and
    renumbered "session_<i>" with the source id in meta["original_session_id"]; turn ids "D<i>:<k>".
    category = task, category_id = level ("Level 1".."3", from the record or TIMEDIAL_LEVELS); the question
    text keeps its option lines as the model saw them and `options` is the parsed letter -> text view;
    meta["answer_format"] says how the gold is scored. evidence_session_ids = the gold sessions (their source
    ids in meta["original_evidence_session_ids"]), evidence_turn_ids = the utterances marked relevant.
    """
    path = Path(path)
    context_map = _timedial_json_dict(Path(contexts), "contexts") if contexts is not None else None
    range_map = _timedial_json_dict(Path(time_ranges), "time ranges") if time_ranges is not None else None
    convs: list[Conversation] = []
    records: list[str] = []
    seen: set[str] = set()
    for where, rec in _read_records(path):
        if "gold_answer" in rec and ("model_output" in rec or "parsed_output" in rec):
            # Memory-T1's released result files (memrl.data.timedial_results): detected by their record keys.
            from memrl.data.timedial_results import load_timedial_results

            return load_timedial_results(path, time_ranges=time_ranges, contexts=contexts)
        if "prompt" in rec or "reward_model" in rec:
            conv = _timedial_verl(rec, where, path)
        elif "Question ID" in rec:
            if context_map is None:
                raise where.named(f"Question ID {rec['Question ID']!r}").fail(
                    "",
                    "a TIME-Dial question record needs its contexts file (contexts=..., or "
                    "--contexts on the command line)",
                )
            conv = _timedial_question(rec, where, path, context_map, contexts, range_map)
        else:
            from memrl.data.timedial_results import is_time_range_map

            if is_time_range_map(rec):
                raise DataError(f"{path}: this is a time-range file (question id -> question_time_range), not "
                                "questions; pass it as --time-ranges (data_options.time_ranges=)")
            raise where.fail(
                "",
                "neither a verl record (prompt, reward_model, extra_info), a Memory-T1 results record "
                "(gold_answer, model_output, parsed_output) nor a TIME-Dial "
                f"question ('Question ID', ...); keys: {sorted(rec)[:8]}",
            )
        if conv.conversation_id in seen:
            raise where.fail("", f"duplicate question id {conv.conversation_id!r}")
        seen.add(conv.conversation_id)
        convs.append(conv)
        records.append(where.record)
    source = f"{path} (contexts {contexts})" if contexts is not None else str(path)
    return validate_conversations(convs, source, records)


def _timedial_json_dict(path: Path, what: str) -> dict:
    data = _read_json(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: the {what} file must be a JSON object keyed by id, got {_describe(data)}")
    return data


def _maybe_json(value: Any, where: _Where, field: str) -> Any:
    # convert_to_parquet.py stores extra_info as a JSON string so Arrow needs no nested schema.
    if isinstance(value, str):
        try:
            return json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            raise where.fail(field, "a string that is not valid JSON") from None
    return value


def _timedial_verl(rec: dict, where: _Where, path: Path) -> Conversation:
    extra = where.check(
        _maybe_json(where.get(rec, "extra_info", (dict, str)), where, "extra_info"), (dict,), "extra_info"
    )
    if "index" not in extra:
        raise where.fail("extra_info.index", "missing key")
    qid = str(where.check(extra["index"], (str, int), "extra_info.index"))
    where = where.named(f"index {qid!r}")
    messages = where.get(rec, "prompt", (list,))
    content = None
    for i, msg in enumerate(messages):
        where.check(msg, (dict,), f"prompt[{i}]")
        if where.get(msg, "role", (str,), f"prompt[{i}].role") == "user":
            content = where.get(msg, "content", (str,), f"prompt[{i}].content")
    if content is None:
        raise where.fail("prompt", "no message with role 'user'")
    m = _T1_QUESTION.search(content)
    if m is None:
        raise where.fail(
            "prompt", "no '**User Question:**' ... '***session memory:**' block to take the question from"
        )
    question = _T1_NOW_PREFIX.sub("", m["question"], count=1).strip()
    task = rec.get("ability", extra.get("ability", _MISSING))
    if task is _MISSING:
        raise where.fail("ability", "missing key")
    task = where.check(task, (str,), "ability")
    reward_model = where.get(rec, "reward_model", (dict,))
    truth = where.check(
        _maybe_json(
            where.get(reward_model, "ground_truth", (dict, str), "reward_model.ground_truth"),
            where,
            "reward_model.ground_truth",
        ),
        (dict,),
        "reward_model.ground_truth",
    )
    answer = _answer_text(where.get(truth, "answer", (str, int, float), "reward_model.ground_truth.answer"))
    gold = where.str_list(
        truth, "selected_sessions", "reward_model.ground_truth.selected_sessions", default=None
    )
    if gold is None:
        gold = where.str_list(
            extra, "gold_selected_sessions", "extra_info.gold_selected_sessions", default=[]
        )
    raw_range = where.get(
        extra, "question_time_range", (dict, _NONE), "extra_info.question_time_range", default=None
    )

    all_sessions = where.get(extra, "all_sessions", (list, _NONE), "extra_info.all_sessions", default=None)
    prompt_ids = [
        _session_key(h["sid"])
        for line in m["history"].split("\n")
        if (h := _T1_EVAL_HEADER.fullmatch(line) or _T1_HEADER.fullmatch(line))
    ]
    if all_sessions is not None:
        raw_sessions = [
            _verl_session(s, where, f"extra_info.all_sessions[{i}]") for i, s in enumerate(all_sessions)
        ]
        source = "extra_info.all_sessions"
    else:
        raw_sessions = _parse_t1_history(m["history"])
        source = "prompt"
        # Times parsed from the prompt are ISO by construction of the regexes (or an empty header time).
        for s in raw_sessions:
            s["time"] = _parse_iso(s["time"])
            for u in s["utterances"]:
                u["time"] = _parse_iso(u["time"])
    data_source = rec.get("data_source") if isinstance(rec.get("data_source"), str) else None
    return _timedial_build(
        where,
        path,
        raw_sessions,
        qid=qid,
        question=question,
        answer=answer,
        task=task,
        level=None,
        gold=gold,
        raw_range=raw_range,
        prompt_ids=prompt_ids,
        conv_meta={"data_source": data_source, "sessions_from": source},
    )


def _verl_session(s: Any, where: _Where, field: str) -> dict[str, Any]:
    where.check(s, (dict,), field)
    sid = where.get(s, "session_id", (str, int), f"{field}.session_id")
    utterances = []
    for k, u in enumerate(where.get(s, "utterances", (list,), f"{field}.utterances")):
        uf = f"{field}.utterances[{k}]"
        where.check(u, (dict,), uf)
        event = where.get(u, "event_time", (dict, list, str, _NONE), f"{uf}.event_time", default=None)
        if isinstance(event, dict):
            event = [event.get("start"), event.get("end")]
        utterances.append(
            {
                "speaker": where.get(u, "speaker", (str,), f"{uf}.speaker"),
                "text": where.get(u, "text", (str,), f"{uf}.text"),
                "time": _strict_iso(
                    where.get(u, "utterance_time", (str, _NONE), f"{uf}.utterance_time", default=None),
                    where,
                    f"{uf}.utterance_time",
                ),
                "event_time": event,
                "relevant": _yes_no(u.get("is_relevant")),
            }
        )
    return {
        "id": _session_key(sid),
        "relevant": _yes_no(s.get("is_relevant")),
        "utterances": utterances,
        "time": _strict_iso(
            where.get(s, "session_time", (str, _NONE), f"{field}.session_time", default=None),
            where,
            f"{field}.session_time",
        ),
    }


def _strict_iso(raw: str | None, where: _Where, field: str) -> str | None:
    """Session/utterance times are dataset structure (ISO): an unreadable one is an error, empty is None."""
    if raw is None or not raw.strip():
        return None
    iso = _parse_iso(raw)
    if iso is None:
        raise where.fail(field, f"unparsable date {raw!r} (expected ISO 8601 like '2020-04-02T14:03:00')")
    return iso


def _timedial_question(
    rec: dict, where: _Where, path: Path, context_map: dict, contexts_path: Any, range_map: dict | None
) -> Conversation:
    qid = _record_id(rec, "Question ID", where, "TIME-Dial question")
    where = where.named(f"Question ID {qid!r}")
    question = where.get(rec, "Question", (str,))
    answer = _answer_text(where.get(rec, "Gold Answer", (str, int, float)))
    task = where.get(rec, "Task", (str,))
    level = where.get(rec, "Level", (str, int, _NONE), default=None)
    key = where.get(rec, "Context", (str,))
    if key not in context_map:
        raise where.fail("Context", f"key {key!r} not found in contexts file {contexts_path}")
    evidence = where.get(rec, "Evidence", (list,), default=[])
    gold_ids, gold_texts = [], set()
    for i, ev in enumerate(evidence):
        where.check(ev, (dict,), f"Evidence[{i}]")
        sid = where.get(ev, "session_id", (str, int, _NONE), f"Evidence[{i}].session_id", default=None)
        if sid is not None and str(sid):
            gold_ids.append(_session_key(sid))
        text = where.get(ev, "utterance", (str, _NONE), f"Evidence[{i}].utterance", default=None)
        if text:
            gold_texts.add(text)
    gold_ids = sorted(dict.fromkeys(gold_ids))

    ctx_field = f"contexts[{key!r}]"
    context = where.check(context_map[key], (dict,), ctx_field)
    raw_sessions = []
    for sid, s in context.items():
        sf = f"{ctx_field}[{sid!r}]"
        where.check(s, (dict,), sf)
        utterances = []
        for k, u in enumerate(where.get(s, "content", (list,), f"{sf}.content")):
            uf = f"{sf}.content[{k}]"
            where.check(u, (dict,), uf)
            text = where.get(u, "utterance", (str,), f"{uf}.utterance")
            events = where.get(u, "events", (list, _NONE), f"{uf}.events", default=None)
            utterances.append(
                {
                    "speaker": where.get(u, "speaker", (str,), f"{uf}.speaker"),
                    "text": text,
                    "time": _strict_iso(
                        where.get(u, "utterance_date", (str, _NONE), f"{uf}.utterance_date", default=None),
                        where,
                        f"{uf}.utterance_date",
                    ),
                    "event_time": None,
                    "events": events,
                    "relevant": text in gold_texts,
                }
            )
        raw_sessions.append(
            {
                "id": _session_key(sid),
                "relevant": _session_key(sid) in gold_ids,
                "utterances": utterances,
                "time": _strict_iso(
                    where.get(s, "session_date", (str, _NONE), f"{sf}.session_date", default=None),
                    where,
                    f"{sf}.session_date",
                ),
            }
        )
    raw_range = None
    if range_map is not None and isinstance(range_map.get(qid), dict):
        raw_range = where.check(
            range_map[qid].get("question_time_range"),
            (dict, _NONE),
            f"time_ranges[{qid!r}].question_time_range",
        )
    data_source = rec.get("Dataset Name") if isinstance(rec.get("Dataset Name"), str) else None
    return _timedial_build(
        where,
        path,
        raw_sessions,
        qid=qid,
        question=question,
        answer=answer,
        task=task,
        level=level,
        gold=gold_ids,
        raw_range=raw_range,
        prompt_ids=None,
        conv_meta={"data_source": data_source, "sessions_from": "contexts", "context": key},
    )


def _timedial_build(
    where: _Where,
    path: Path,
    raw_sessions: list[dict],
    *,
    qid: str,
    question: str,
    answer: str,
    task: str,
    level: Any,
    gold: list[str],
    raw_range: dict | None,
    prompt_ids: list[str] | None,
    conv_meta: dict[str, Any],
) -> Conversation:
    """One Conversation from either TIME-Dial form, once both are reduced to the same raw shape.

    raw_sessions: [{id: "session_<source id>", time: ISO | None, relevant: bool | None, utterances:
    [{speaker, text, time, event_time, events?, relevant}]}] in source order.
    """
    # Undated sessions go last; ties keep the source order (Memory-T1 shuffles sessions in its prompts).
    order = sorted(
        range(len(raw_sessions)),
        key=lambda j: (raw_sessions[j]["time"] is None, raw_sessions[j]["time"] or "", j),
    )
    sessions: list[Session] = []
    by_original: dict[str, str] = {}
    evidence_turns: list[str] = []
    for i, j in enumerate(order, start=1):
        raw = raw_sessions[j]
        if raw["id"] in by_original:
            raise where.fail("sessions", f"duplicate session id {raw['id']!r}")
        meta: dict[str, Any] = {"original_session_id": raw["id"]}
        if raw["relevant"] is not None:
            meta["is_relevant"] = raw["relevant"]
        session = Session(session_id=f"session_{i}", index=i, timestamp=raw["time"], turns=[], meta=meta)
        for k, u in enumerate(raw["utterances"], start=1):
            tmeta: dict[str, Any] = {}
            for key in ("time", "event_time", "events", "relevant"):
                if u.get(key) is not None:
                    tmeta[{"time": "utterance_time", "relevant": "is_relevant"}.get(key, key)] = u[key]
            session.turns.append(Turn(turn_id=f"D{i}:{k}", speaker=u["speaker"], text=u["text"], meta=tmeta))
            if u["relevant"]:
                evidence_turns.append(f"D{i}:{k}")
        by_original[raw["id"]] = session.session_id
        sessions.append(session)

    stem, options = _parse_options(question)
    time_range, range_meta = _time_range(raw_range, where, "question_time_range")
    gold_keys = list(dict.fromkeys(_session_key(g) for g in gold))
    qmeta: dict[str, Any] = {
        "question_stem": stem,
        "answer_format": TIMEDIAL_ANSWER_FORMATS.get(task, "single_choice"),
        "original_evidence_session_ids": gold_keys,
        **range_meta,
    }
    unresolved = [g for g in gold_keys if g not in by_original]
    if unresolved:
        qmeta["evidence_unresolved"] = unresolved
    if prompt_ids is not None:
        qmeta["prompt_session_ids"] = [by_original.get(p, p) for p in dict.fromkeys(prompt_ids)]
    evidence_sessions = sorted(
        {by_original[g] for g in gold_keys if g in by_original}, key=lambda s: int(s[8:])
    )
    level = str(level) if level is not None else TIMEDIAL_LEVELS.get(task)
    q = Question(
        question_id=qid,
        question=question,
        answer=answer,
        category=task,
        category_id=level,
        evidence_turn_ids=evidence_turns,
        evidence_session_ids=evidence_sessions,
        question_time=None,
        time_range=time_range,
        options=options,
        meta=qmeta,
    )
    meta = {
        "benchmark": "timedial",
        "source": path.name,
        **{k: v for k, v in conv_meta.items() if v is not None},
    }
    return Conversation(
        conversation_id=qid,
        speakers=_speakers_in_order(sessions),
        sessions=sessions,
        questions=[q],
        meta=meta,
    )


# ---- registry ----------------------------------------------------------------------------------------------
LOADERS: dict[str, Callable[..., list[Conversation]]] = {
    "locomo": load_locomo,
    "longmemeval": load_longmemeval,
    "timedial": load_timedial,
    "timedial_results": lambda path, **kw: _load_timedial_results(path, **kw),
}


def _load_timedial_results(path: str | Path, **options: Any) -> list[Conversation]:
    from memrl.data.timedial_results import load_timedial_results

    return load_timedial_results(path, **options)


def load(fmt: str, path: str | Path, **options: Any) -> list[Conversation]:
    """Load `path` with the loader named `fmt` (a key of LOADERS); options go to it (TIME-Dial only)."""
    if fmt not in LOADERS:
        raise DataError(f"unknown format {fmt!r}; expected one of {sorted(LOADERS)}")
    return LOADERS[fmt](path, **options)


FORMATS = ("auto", "jsonl", *LOADERS)


def load_conversations(path: str | os.PathLike, format: str = "auto", split: str | None = None,
                       **options: Any) -> list[Conversation]:
    """The one way to read conversations: every reader (data, envs, train, eval, synth) calls this.

    format: "jsonl" (the common schema: a JSONL file or a `datasets` directory), a benchmark loader
    ("locomo" | "longmemeval" | "timedial", options go to it), or "auto" (= "jsonl"; benchmark files need
    their format named). split: with a directory, read `<dir>/<split>.jsonl` (a `memrl synth` output).
    """
    if format not in FORMATS:
        raise DataError(f"unknown format {format!r}; expected one of {list(FORMATS)}")
    p = Path(path)
    if format in LOADERS:
        return load(format, p, **options)
    if split is not None and p.is_dir():
        f = p / f"{split}.jsonl"
        if not f.exists():
            raise DataError(f"{p}: no {split}.jsonl (expected a `memrl synth` output directory)")
        p = f
    return read_conversations(p)
