"""Memory-T1's released TIME-Dial result files -> the common schema, their predictions kept raw.

This module owns the released-results layouts: `read_results` / `read_time_ranges` (the files, checked),
`load_timedial_results` (one Conversation per record, built with `timedial.timedial_build`) and
`question_key` (the question-text join key `memrl.eval.predictions` also uses). It imports the TIME-Dial
pieces from `timedial` and `common`, never the reverse; `memrl.data.loaders.load_timedial` sends a results
file here.

Two released layouts (benchmarks.md 2.1), both a JSON list (JSONL also read) of one record per question:

- full-prompt results: {question_id, question (stem + lettered options), level, task, prompt (the full prompt
  given to the model, sessions included where the system retrieved them), model_output, parsed_output (a dict
  with selected_memory and answer; {} where their parse failed), gold_answer};
- BM25 results: the same without question_id, task and level, plus bm25_top5_session_ids (a ranking of
  session ids). Records are matched to questions by question text (theirs zips files by position).

The time-range file (`question_time_range_annotated_*.json`: a dict keyed by question id -> {question,
question_time_range {start, end}, reasoning, events}) is read with `time_ranges=` (`--time-ranges`).

`load_timedial_results` gives one Conversation per record (conversation_id = question_id, else "q" + a hash
of the question text, flagged by question.meta["question_id_from_text"]; messages name the file's question_id or
the question text, never that hash), its sessions parsed from the prompt's session memory (often empty), category = task
("Unknown" when the record has none, the task Memory-T1's scorer then uses), category_id = level. The
prediction is kept in `question.meta["prediction"]`: {model_output, parsed_output, official_answer (their
parsed answer, "" when none), answer (memrl's lenient parse of model_output; None when it finds none),
selected_memory, source}.

`PredictionsAnswerer` (`memrl eval policy=predictions:FILE`) answers each question with the prediction FILE
holds for it (by question_id, else by question text), so a released predictions file is scored without a
model: `timedial_acc` on memrl's lenient parse of model_output (falling back to the released parse when memrl's
finds no JSON), `timedial_official` on the released `parsed_output["answer"]` as Memory-T1's scorer reads it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from memrl.data.io import DataError, iter_jsonl
from memrl.data.loaders.common import Where, parse_iso, read_json
from memrl.data.loaders.timedial import (
    T1_EVAL_HEADER,
    T1_HEADER,
    T1_QUESTION,
    is_time_range_map,
    merge_repeated_sessions,
    parse_t1_history,
    timedial_build,
)
from memrl.data.schema import Conversation

__all__ = ["check_unique", "is_results_records", "is_time_range_map", "load_timedial_results", "question_key",
           "read_results", "read_time_ranges", "record_label", "stem_key"]

log = logging.getLogger(__name__)

_RESULT_KEYS = ("model_output", "parsed_output")


def is_results_records(data: Any) -> bool:
    """A JSON list whose first record has gold_answer and model_output or parsed_output."""
    return (isinstance(data, list) and bool(data) and isinstance(data[0], dict) and "gold_answer" in data[0]
            and any(k in data[0] for k in _RESULT_KEYS))


def _read(path: Path) -> Any:
    if path.suffix.lower() == ".jsonl":
        return [obj for _, obj in iter_jsonl(path)]
    return read_json(path)


def question_key(text: str) -> str:
    """Question text as a join key: whitespace collapsed (the files agree on the text otherwise)."""
    return " ".join(str(text).split())


def record_label(rec: dict[str, Any]) -> str:
    """How a message names a record: its question_id, else its question's first line (never an id memrl made)."""
    if rec.get("question_id") is not None:
        return f"question_id {str(rec['question_id'])!r}"
    stem = question_key(str(rec.get("question", "")).split("\n")[0])
    return f"question {stem[:60] + '...' if len(stem) > 60 else stem!r}"


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def check_unique(records: list[dict[str, Any]]) -> None:
    """One record per question: by question_id, else by question text. The first repeat is a DataError."""
    first: dict[tuple[str, str], int] = {}
    for i, rec in enumerate(records):
        key = (("id", str(rec["question_id"])) if rec.get("question_id") is not None
               else ("text", question_key(rec["question"])))
        if key in first:
            what = repr(key[1]) if key[0] == "id" else "(same question text)"
            raise DataError(f"{rec['_where']}: duplicate question {what}, first at record {first[key]}; a results "
                            "file holds one prediction per question")
        first[key] = i


def stem_key(text: str) -> str:
    """A question's first line (its stem), case, whitespace and a final "?" folded: what two files agree on."""
    stem = str(text).split("\n")[0]
    return question_key(stem).rstrip("?").strip().lower()


def _range_problem(entry: Any) -> str | None:
    """Why an entry's question_time_range cannot be read (None: it can, or there is none)."""
    if not isinstance(entry, dict):
        return f"expected an object, got {type(entry).__name__}"
    rng = entry.get("question_time_range")
    if rng is None:
        return None
    if not (isinstance(rng, dict) and all(isinstance(rng.get(k, ""), (str, type(None))) for k in ("start", "end"))):
        return f"question_time_range: expected {{start, end}} strings, got {json.dumps(rng)[:80]}"
    return None


def read_time_ranges(path: str | Path) -> dict[str, dict]:
    """The time-range file, checked: {question id: {question, question_time_range: {start, end}, ...}}.

    The released file (question_time_range_annotated_0717.json) was annotated by an LLM: 4 of its 4,716 entries
    have list-valued start/end. Such entries are skipped (those questions get no time range) and a warning says how
    many; a file in which no entry is readable is refused.
    """
    path = Path(path)
    data = _read(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: a time-range file must be a JSON object keyed by question id, got "
                        f"{type(data).__name__}")
    skipped = {qid: problem for qid, entry in data.items() if (problem := _range_problem(entry)) is not None}
    if skipped and len(skipped) == len(data):
        qid, problem = next(iter(skipped.items()))
        raise DataError(f"{path}: no entry has a readable time range (question {qid!r}: {problem}); is this a "
                        "question_time_range_annotated file?")
    if skipped:
        qid, problem = next(iter(skipped.items()))
        log.warning("warning: %s: skipped %d of %d time-range entries that cannot be read (first: question %r: %s); "
                    "those questions get no time range", path, len(skipped), len(data), qid, problem)
    return {qid: entry for qid, entry in data.items() if qid not in skipped}


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """The records of a released results file, checked; each gains `_where` ("file: record i (question_id x)")."""
    path = Path(path)
    data = _read(path)
    if is_time_range_map(data):
        raise DataError(f"{path}: this is a time-range file (question id -> question_time_range), not results; "
                        "pass it as --time-ranges (data_options.time_ranges=)")
    if not isinstance(data, list) or not data:
        raise DataError(f"{path}: expected a JSON list of Memory-T1 result records, got "
                        f"{'an empty list' if data == [] else _type_name(data)}")
    out = []
    for i, rec in enumerate(data):
        where = f"{path}: record {i}"
        if not isinstance(rec, dict):
            raise DataError(f"{where}: expected an object, got {type(rec).__name__}")
        if "question_id" in rec:
            if not isinstance(rec["question_id"], (str, int)) or isinstance(rec["question_id"], bool):
                raise DataError(f"{where}: question_id: expected string, got {_type_name(rec['question_id'])} (a "
                                "record without an id has no question_id key; it is matched by question text)")
            where = f"{where} (question_id {str(rec['question_id'])!r})"
        for key, types in (("question", (str,)), ("gold_answer", (str, int, float))):
            if key not in rec:
                raise DataError(f"{where}: {key}: missing key; not a Memory-T1 result record? it has keys "
                                f"{sorted(rec)[:8]}")
            if not isinstance(rec[key], types) or isinstance(rec[key], bool):
                raise DataError(f"{where}: {key}: expected {types[0].__name__}, got {_type_name(rec[key])}")
        if "question_id" not in rec:
            where = f"{where} ({record_label(rec)})"
        if not any(k in rec for k in _RESULT_KEYS):
            raise DataError(f"{where}: neither model_output nor parsed_output; not a results record")
        for key, types in (("model_output", (str, type(None))), ("parsed_output", (dict, type(None))),
                           ("prompt", (str, type(None))), ("task", (str, type(None))),
                           ("level", (str, int, type(None)))):
            if key in rec and (not isinstance(rec[key], types) or isinstance(rec[key], bool)):
                raise DataError(f"{where}: {key}: expected {types[0].__name__}, got {_type_name(rec[key])}")
        out.append({**rec, "_where": where})
    return out


def _prediction(rec: dict[str, Any], source: str) -> dict[str, Any]:
    """The released prediction as it is: raw output and the released parse. Reading an answer out of it is the
    evaluator's job (memrl.eval.predictions.interpret), not the data layer's."""
    return {"model_output": rec.get("model_output"), "parsed_output": rec.get("parsed_output"), "source": source}


def _record_id(rec: dict[str, Any]) -> str:
    if rec.get("question_id") is not None:
        return str(rec["question_id"])
    return "q" + hashlib.sha256(question_key(rec["question"]).encode()).hexdigest()[:12]


def load_timedial_results(path: str | Path, time_ranges: str | Path | None = None,
                          contexts: str | Path | None = None) -> list[Conversation]:
    """Read a released Memory-T1 results file into the common schema (see the module docstring)."""
    if contexts is not None:
        raise DataError(f"{path}: a results file carries its own prompts; --contexts does not apply to it")
    path = Path(path)
    ranges = read_time_ranges(time_ranges) if time_ranges is not None else None
    by_stem = {stem_key(v.get("question", "")): k for k, v in (ranges or {}).items()}
    convs: list[Conversation] = []
    records = read_results(path)
    check_unique(records)
    repeated: list[tuple[str, list[str]]] = []
    for i, rec in enumerate(records):
        qid = _record_id(rec)
        where = Where(path, f"record {i}").named(record_label(rec))
        raw_sessions, prompt_ids, again = [], None, []
        m = T1_QUESTION.search(rec.get("prompt") or "")
        if m is not None:
            raw_sessions, again = merge_repeated_sessions(parse_t1_history(m["history"]))
            if again:
                repeated.append((where.record, again))
            for s in raw_sessions:
                s["time"] = parse_iso(s["time"] or "")
                for u in s["utterances"]:
                    u["time"] = parse_iso(u["time"] or "")
            prompt_ids = [h["sid"] for line in m["history"].split("\n")
                          if (h := T1_EVAL_HEADER.fullmatch(line) or T1_HEADER.fullmatch(line))]
        raw_range = None
        if ranges is not None:
            key = qid if qid in ranges else by_stem.get(stem_key(rec["question"]))
            if key is not None:
                raw_range = ranges[key].get("question_time_range")
        task = rec.get("task") or "Unknown"
        conv = timedial_build(
            where, path, raw_sessions, qid=qid, question=rec["question"].strip(),
            answer=str(rec["gold_answer"]), task=task, level=rec.get("level"), gold=[], raw_range=raw_range,
            prompt_ids=prompt_ids,
            conv_meta={"sessions_from": "prompt", "results_file": path.name, "repeated_sessions": again or None},
        )
        q = conv.questions[0]
        if rec.get("question_id") is None:
            q.meta["question_id_from_text"] = True  # the id is memrl's ("q" + hash of the text), not the file's
        q.meta["prediction"] = _prediction(rec, path.name)
        if "bm25_top5_session_ids" in rec:
            q.meta["bm25_ranked_session_ids"] = [str(s) for s in rec["bm25_top5_session_ids"] or []]
        convs.append(conv)
    if repeated:
        record, ids = repeated[0]
        log.warning("warning: %s: %d of %d prompts repeat a session header (first: %s: %s); the repeats were "
                    "merged into one session (kept apart, renumbered, where their times differ)", path,
                    len(repeated), len(records), record, ", ".join(f"<{i.removeprefix('session_')}>" for i in ids))
    return convs
