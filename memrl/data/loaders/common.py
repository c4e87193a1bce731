"""Shared plumbing of the benchmark readers: reading a file's records and checking raw values.

This module owns what every benchmark reader (locomo, longmemeval, timedial, timedial_results) needs and no
benchmark's format: `read_json` / `read_records` (a JSON list or object, JSONL or Parquet, with one-line
`DataError`s for missing, unreadable, non-UTF-8, truncated or empty files), `Where` (a record's position in
the input; it checks each raw value's type and builds the "file: record 3 (sample_id 'x'): field: problem"
message), `record_id`, `describe`, date parsing (`parse_time`, `parse_iso`), `answer_text`,
`speakers_in_order` and `unique_conversations` (one validated Conversation per record, duplicate ids refused).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from memrl.data.io import DataError, iter_jsonl
from memrl.data.schema import Conversation, Session
from memrl.data.validate import validate_conversations

__all__ = [
    "MISSING",
    "NONE",
    "TYPE_NAMES",
    "Where",
    "answer_text",
    "describe",
    "parse_iso",
    "parse_time",
    "read_json",
    "read_records",
    "record_id",
    "speakers_in_order",
    "unique_conversations",
]

MISSING = object()
NONE = type(None)
TYPE_NAMES = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "list",
    dict: "object",
    NONE: "null",
}


# ---- reading files and checking raw values -------------------------------------------------------------
class Where:
    """A record's position in the input, for error messages ("file: record 3 (sample_id 'x'): field: ...")."""

    def __init__(self, path: Path, record: str):
        self.path, self.record = path, record

    def named(self, label: str) -> Where:
        return Where(self.path, f"{self.record} ({label})")

    def fail(self, field: str, problem: str) -> DataError:
        return DataError(f"{self.path}: {self.record}: {field + ': ' if field else ''}{problem}")

    def check(self, value: Any, types: tuple[type, ...], field: str) -> Any:
        # bool is an int subclass; `"category": true` is a broken record, not category 1.
        ok = isinstance(value, types) and (bool in types or not isinstance(value, bool))
        if not ok:
            want = " or ".join(TYPE_NAMES.get(t, t.__name__) for t in types)
            raise self.fail(field, f"expected {want}, got {describe(value)}")
        return value

    def get(
        self, obj: dict, key: str, types: tuple[type, ...], field: str | None = None, default: Any = MISSING
    ):
        field = field or key
        if key not in obj:
            if default is MISSING:
                raise self.fail(field, "missing key")
            return default
        return self.check(obj[key], types, field)

    def str_list(self, obj: dict, key: str, field: str, default: Any = MISSING) -> list[str]:
        value = self.get(obj, key, (list,), field, default)
        if value is None:  # a missing optional list: the caller's default (None) is returned as is
            return value
        for i, item in enumerate(value):
            self.check(item, (str,), f"{field}[{i}]")
        return value


def record_id(rec: dict, key: str, where: Where, benchmark: str) -> str:
    """The record's id; when missing, say which keys the record does have (usually: the wrong --format)."""
    if key not in rec:
        raise where.fail(key, f"missing key; not a {benchmark} record? it has keys {sorted(rec)[:8]}")
    return str(where.check(rec[key], (str, int), key))


def describe(value: Any) -> str:
    name = TYPE_NAMES.get(type(value), type(value).__name__)
    if isinstance(value, (dict, list)):
        return f"{name} of length {len(value)}"
    text = repr(value)
    return f"{name} {text[:60] + '...' if len(text) > 60 else text}"


def read_json(path: Path) -> Any:
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


def read_records(path: Path) -> list[tuple[Where, Any]]:
    """Records of a benchmark file: a JSON list (or one object), JSONL (`.jsonl`) or Parquet (`.parquet`)."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        records = [(Where(path, f"line {n}"), obj) for n, obj in iter_jsonl(path)]
    elif suffix == ".parquet":
        records = [(Where(path, f"row {i}"), row) for i, row in enumerate(_read_parquet(path))]
    else:
        data = read_json(path)
        if isinstance(data, dict):
            data = [data]
        if not isinstance(data, list):
            raise DataError(
                f"{path}: expected a JSON list of records (or one record object), got {describe(data)}"
            )
        records = [(Where(path, f"record {i}"), rec) for i, rec in enumerate(data)]
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


def parse_time(raw: str, fmt: str, where: Where, field: str) -> str:
    try:
        return datetime.strptime(raw.strip(), fmt).isoformat()
    except (ValueError, OverflowError):
        example = datetime(2023, 5, 8, 13, 56).strftime(fmt)
        raise where.fail(field, f"unparsable date {raw!r} (expected like {example!r})") from None


def parse_iso(raw: str) -> str | None:
    """Naive ISO 8601 of an ISO date/datetime string; None for '', 'unknown' or anything unparsable."""
    text = raw.strip()
    if not text or text.lower() == "unknown":
        return None
    try:
        return datetime.fromisoformat(text).replace(tzinfo=None).isoformat()
    except ValueError:
        return None


def answer_text(value: Any) -> str:
    # 6 LoCoMo answers and some LongMemEval answers are JSON numbers (2022, 3); the schema holds strings.
    return value if isinstance(value, str) else str(value)


def speakers_in_order(sessions: list[Session]) -> list[str]:
    return list(dict.fromkeys(t.speaker for s in sessions for t in s.turns))


def unique_conversations(path: Path, build, id_field: str) -> list[Conversation]:
    """One Conversation per record of `path`; a repeated id is an error naming the record."""
    convs: list[Conversation] = []
    records: list[str] = []
    seen: set[str] = set()
    for where, rec in read_records(path):
        conv = build(rec, where, path)
        if conv.conversation_id in seen:
            raise where.fail(id_field, f"duplicate {id_field} {conv.conversation_id!r}")
        seen.add(conv.conversation_id)
        convs.append(conv)
        records.append(where.record)
    return validate_conversations(convs, str(path), records)
