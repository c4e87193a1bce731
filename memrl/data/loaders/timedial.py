"""TIME-Dial (Memory-T1's verl records, or its question file plus contexts) -> the common schema.

This module owns the TIME-Dial format and the pieces every TIME-Dial reader shares: the task taxonomy
(`TIMEDIAL_LEVELS`, `TIMEDIAL_ANSWER_FORMATS`), the Memory-T1 prompt layout (`T1_QUESTION`, `T1_HEADER`,
`T1_EVAL_HEADER`, `parse_t1_history`), option and time-range parsing, `timedial_build` (one Conversation from
either form once reduced to the same raw shape), the per-record reader `timedial_conversation` (a verl record
or a question record) and the layout tests `is_results_record` / `is_time_range_map`. It does not read the
released results files (`timedial_results`, above it) and does not choose between layouts: the
`memrl.data.loaders.load_timedial` entry does, and documents the mapping.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from memrl.data.io import DataError
from memrl.data.loaders.common import (
    MISSING,
    NONE,
    Where,
    answer_text,
    describe,
    parse_iso,
    read_json,
    record_id,
    speakers_in_order,
)
from memrl.data.schema import Conversation, Question, Session, Turn

__all__ = [
    "T1_EVAL_HEADER",
    "T1_HEADER",
    "T1_QUESTION",
    "TIMEDIAL_ANSWER_FORMATS",
    "TIMEDIAL_LEVELS",
    "is_results_record",
    "is_time_range_map",
    "merge_repeated_sessions",
    "parse_t1_history",
    "read_id_map",
    "timedial_build",
    "timedial_conversation",
]

_RESULT_KEYS = ("model_output", "parsed_output")

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
T1_QUESTION = re.compile(
    r"\*\*User Question:\*\*[ \t]*\n(?P<question>.*?)\n\n\*\*\*session memory:\*\*[ \t]*\n?"
    r"(?P<history>.*?)(?:\n\*\*Expected Response:\*\*|\Z)",
    re.S,
)
_T1_NOW_PREFIX = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?: ")
_ISO = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?"
# verl converter: "<session_time>: <session_6> \n India: <utterance_time>: text\n Debra: <time>: text\n"
T1_HEADER = re.compile(rf"(?P<time>{_ISO}|\S*): <(?P<sid>[^<>\s]+)>\s*")
_T1_UTTERANCE = re.compile(rf" ?(?P<speaker>[^:\n]+?): (?P<time>{_ISO}): (?P<text>.*)")
# eval scripts: "<session_time>: <6>, India Brown <time> : text" then "Debra Ryan <time> : text"
T1_EVAL_HEADER = re.compile(
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


def parse_t1_history(history: str) -> list[dict[str, Any]]:
    """Session blocks of a Memory-T1 prompt (fallback when a record has no extra_info.all_sessions)."""
    sessions: list[dict[str, Any]] = []
    for line in history.split("\n"):
        if m := T1_EVAL_HEADER.fullmatch(line):
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
        elif m := T1_HEADER.fullmatch(line):
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


def merge_repeated_sessions(raw_sessions: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Sessions parsed from a prompt, each id once; and the ids that were repeated.

    Memory-T1's BM25 prompts show some sessions twice (a `<9>` header in two places: 37 of the 200 released
    `bm25_local_infer_results.json` prompts). A repeat with the same session time (or none) is merged into the
    first block: its utterances not already there are appended. A repeat with another time is a different
    session under a reused id: it is kept, as "<id>~2" ("~3", ...).
    """
    out: list[dict[str, Any]] = []
    by_id: dict[str, dict[str, Any]] = {}
    repeated: list[str] = []
    for s in raw_sessions:
        sid = s["id"]
        if sid not in by_id:
            by_id[sid] = s
            out.append(s)
            continue
        if sid not in repeated:
            repeated.append(sid)
        first = by_id[sid]
        if not s["time"] or not first["time"] or s["time"] == first["time"]:
            seen = {(u["speaker"], u["text"], u["time"]) for u in first["utterances"]}
            for u in s["utterances"]:
                if (u["speaker"], u["text"], u["time"]) not in seen:
                    first["utterances"].append(u)
                    seen.add((u["speaker"], u["text"], u["time"]))
            first["time"] = first["time"] or s["time"]
        else:
            n = 2
            while f"{sid}~{n}" in by_id:
                n += 1
            renamed = dict(s, id=f"{sid}~{n}")
            by_id[renamed["id"]] = renamed
            out.append(renamed)
    return out, repeated


def _yes_no(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("yes", "no"):
        return value.strip().lower() == "yes"
    return None


def _time_range(raw: dict | None, where: Where, field: str) -> tuple[list[str | None] | None, dict]:
    """[start, end] naive ISO from {"start","end"}; "unknown" (3,340 of 4,716 starts) -> None.

    The ranges were annotated by an LLM, so an unparsable bound becomes None with the raw value kept in
    meta rather than failing the whole file. A date-only end means the end of that day.
    """
    if raw is None:
        return None, {}
    start = where.get(raw, "start", (str, NONE), f"{field}.start", default=None)
    end = where.get(raw, "end", (str, NONE), f"{field}.end", default=None)
    bounds = [parse_iso(start) if start else None, parse_iso(end) if end else None]
    if end and bounds[1] and len(end.strip()) == 10:
        bounds[1] = bounds[1][:10] + "T23:59:59"
    meta = {"time_range_raw": {"start": start, "end": end}} if [start, end] != bounds else {}
    return (bounds if any(bounds) else None), meta


# ---- layouts -----------------------------------------------------------------------------------------------
def is_results_record(rec: dict) -> bool:
    """A record of Memory-T1's released result files: gold_answer and model_output or parsed_output."""
    return "gold_answer" in rec and any(k in rec for k in _RESULT_KEYS)


def is_time_range_map(data: Any) -> bool:
    """A dict keyed by question id whose values carry question_time_range (the annotated time-range file)."""
    if not isinstance(data, dict) or not data:
        return False
    first = next(iter(data.values()))
    return isinstance(first, dict) and "question_time_range" in first


def timedial_conversation(
    rec: dict, where: Where, path: Path, context_map: dict | None, contexts: Any, range_map: dict | None
) -> Conversation:
    """One verl record or question record (with its contexts) -> a Conversation; anything else is an error."""
    if "prompt" in rec or "reward_model" in rec:
        return _timedial_verl(rec, where, path)
    if "Question ID" in rec:
        if context_map is None:
            raise where.named(f"Question ID {rec['Question ID']!r}").fail(
                "",
                "a TIME-Dial question record needs its contexts file (contexts=..., or "
                "--contexts on the command line)",
            )
        return _timedial_question(rec, where, path, context_map, contexts, range_map)
    if is_time_range_map(rec):
        raise DataError(f"{path}: this is a time-range file (question id -> question_time_range), not "
                        "questions; pass it as --time-ranges (data_options.time_ranges=)")
    raise where.fail(
        "",
        "neither a verl record (prompt, reward_model, extra_info), a Memory-T1 results record "
        "(gold_answer, model_output, parsed_output) nor a TIME-Dial "
        f"question ('Question ID', ...); keys: {sorted(rec)[:8]}",
    )


def read_id_map(path: Path, what: str) -> dict:
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: the {what} file must be a JSON object keyed by id, got {describe(data)}")
    return data


def _maybe_json(value: Any, where: Where, field: str) -> Any:
    # convert_to_parquet.py stores extra_info as a JSON string so Arrow needs no nested schema.
    if isinstance(value, str):
        try:
            return json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            raise where.fail(field, "a string that is not valid JSON") from None
    return value


def _timedial_verl(rec: dict, where: Where, path: Path) -> Conversation:
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
    m = T1_QUESTION.search(content)
    if m is None:
        raise where.fail(
            "prompt", "no '**User Question:**' ... '***session memory:**' block to take the question from"
        )
    question = _T1_NOW_PREFIX.sub("", m["question"], count=1).strip()
    task = rec.get("ability", extra.get("ability", MISSING))
    if task is MISSING:
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
    answer = answer_text(where.get(truth, "answer", (str, int, float), "reward_model.ground_truth.answer"))
    gold = where.str_list(
        truth, "selected_sessions", "reward_model.ground_truth.selected_sessions", default=None
    )
    if gold is None:
        gold = where.str_list(
            extra, "gold_selected_sessions", "extra_info.gold_selected_sessions", default=[]
        )
    raw_range = where.get(
        extra, "question_time_range", (dict, NONE), "extra_info.question_time_range", default=None
    )

    all_sessions = where.get(extra, "all_sessions", (list, NONE), "extra_info.all_sessions", default=None)
    prompt_ids = [
        _session_key(h["sid"])
        for line in m["history"].split("\n")
        if (h := T1_EVAL_HEADER.fullmatch(line) or T1_HEADER.fullmatch(line))
    ]
    repeated: list[str] = []
    if all_sessions is not None:
        raw_sessions = [
            _verl_session(s, where, f"extra_info.all_sessions[{i}]") for i, s in enumerate(all_sessions)
        ]
        source = "extra_info.all_sessions"
    else:
        raw_sessions, repeated = merge_repeated_sessions(parse_t1_history(m["history"]))
        source = "prompt"
        # Times parsed from the prompt are ISO by construction of the regexes (or an empty header time).
        for s in raw_sessions:
            s["time"] = parse_iso(s["time"])
            for u in s["utterances"]:
                u["time"] = parse_iso(u["time"])
    data_source = rec.get("data_source") if isinstance(rec.get("data_source"), str) else None
    return timedial_build(
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
        conv_meta={"data_source": data_source, "sessions_from": source, "repeated_sessions": repeated or None},
    )


def _verl_session(s: Any, where: Where, field: str) -> dict[str, Any]:
    where.check(s, (dict,), field)
    sid = where.get(s, "session_id", (str, int), f"{field}.session_id")
    utterances = []
    for k, u in enumerate(where.get(s, "utterances", (list,), f"{field}.utterances")):
        uf = f"{field}.utterances[{k}]"
        where.check(u, (dict,), uf)
        event = where.get(u, "event_time", (dict, list, str, NONE), f"{uf}.event_time", default=None)
        if isinstance(event, dict):
            event = [event.get("start"), event.get("end")]
        utterances.append(
            {
                "speaker": where.get(u, "speaker", (str,), f"{uf}.speaker"),
                "text": where.get(u, "text", (str,), f"{uf}.text"),
                "time": _strict_iso(
                    where.get(u, "utterance_time", (str, NONE), f"{uf}.utterance_time", default=None),
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
            where.get(s, "session_time", (str, NONE), f"{field}.session_time", default=None),
            where,
            f"{field}.session_time",
        ),
    }


def _strict_iso(raw: str | None, where: Where, field: str) -> str | None:
    """Session/utterance times are dataset structure (ISO): an unreadable one is an error, empty is None."""
    if raw is None or not raw.strip():
        return None
    iso = parse_iso(raw)
    if iso is None:
        raise where.fail(field, f"unparsable date {raw!r} (expected ISO 8601 like '2020-04-02T14:03:00')")
    return iso


def _timedial_question(
    rec: dict, where: Where, path: Path, context_map: dict, contexts_path: Any, range_map: dict | None
) -> Conversation:
    qid = record_id(rec, "Question ID", where, "TIME-Dial question")
    where = where.named(f"Question ID {qid!r}")
    question = where.get(rec, "Question", (str,))
    answer = answer_text(where.get(rec, "Gold Answer", (str, int, float)))
    task = where.get(rec, "Task", (str,))
    level = where.get(rec, "Level", (str, int, NONE), default=None)
    key = where.get(rec, "Context", (str,))
    if key not in context_map:
        raise where.fail("Context", f"key {key!r} not found in contexts file {contexts_path}")
    evidence = where.get(rec, "Evidence", (list,), default=[])
    gold_ids, gold_texts = [], set()
    for i, ev in enumerate(evidence):
        where.check(ev, (dict,), f"Evidence[{i}]")
        sid = where.get(ev, "session_id", (str, int, NONE), f"Evidence[{i}].session_id", default=None)
        if sid is not None and str(sid):
            gold_ids.append(_session_key(sid))
        text = where.get(ev, "utterance", (str, NONE), f"Evidence[{i}].utterance", default=None)
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
            events = where.get(u, "events", (list, NONE), f"{uf}.events", default=None)
            utterances.append(
                {
                    "speaker": where.get(u, "speaker", (str,), f"{uf}.speaker"),
                    "text": text,
                    "time": _strict_iso(
                        where.get(u, "utterance_date", (str, NONE), f"{uf}.utterance_date", default=None),
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
                    where.get(s, "session_date", (str, NONE), f"{sf}.session_date", default=None),
                    where,
                    f"{sf}.session_date",
                ),
            }
        )
    raw_range = None
    if range_map is not None and isinstance(range_map.get(qid), dict):
        raw_range = where.check(
            range_map[qid].get("question_time_range"),
            (dict, NONE),
            f"time_ranges[{qid!r}].question_time_range",
        )
    data_source = rec.get("Dataset Name") if isinstance(rec.get("Dataset Name"), str) else None
    return timedial_build(
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


def timedial_build(
    where: Where,
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
        speakers=speakers_in_order(sessions),
        sessions=sessions,
        questions=[q],
        meta=meta,
    )
