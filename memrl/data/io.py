"""JSONL and Hugging Face `datasets` IO for the common schema.

Writes are atomic (temp file + rename) so an interrupted run never leaves a half-written file behind.
Reads name the file and line of any malformed record.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from memrl.data.schema import Conversation, SchemaError
from memrl.errors import MemrlError


class DataError(MemrlError, ValueError):
    """Malformed input data. The message names the file and the line or record."""

    exit_code = 2


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w"):
    """Open a temporary file next to `path`; rename it over `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the result normal permissions
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_write(path) as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, sort_keys=False)
        f.write("\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> int:
    n = 0
    with atomic_write(path) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False))
            f.write("\n")
            n += 1
    return n


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-empty line; a bad line raises DataError naming it."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                hint = " (the file may be truncated)" if not line.endswith("\n") else ""
                raise DataError(f"{path}:{lineno}: invalid JSON: {e.msg} at column {e.colno}{hint}") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


def write_conversations(path: str | os.PathLike, convs: Iterable[Conversation]) -> int:
    return write_jsonl(path, (c.to_dict() for c in convs))


def read_conversations(path: str | os.PathLike) -> list[Conversation]:
    """Read a common-schema JSONL file (one conversation per line), or a `datasets` directory."""
    path = Path(path)
    if path.is_dir():
        return read_hf(path)
    out = []
    for lineno, obj in iter_jsonl(path):
        try:
            out.append(Conversation.from_dict(obj))
        except SchemaError as e:
            raise DataError(f"{path}:{lineno}: {e}") from None
    return out


# ---- Hugging Face datasets --------------------------------------------------------------------------
# Nested records with free-form `meta` dicts do not map onto one Arrow schema across benchmarks, so each
# row stores the conversation as JSON next to a few flat columns that are useful for filtering.
def to_hf_dataset(convs: Iterable[Conversation]):
    import datasets

    rows = {"conversation_id": [], "num_sessions": [], "num_turns": [], "num_questions": [], "json": []}
    for c in convs:
        rows["conversation_id"].append(c.conversation_id)
        rows["num_sessions"].append(len(c.sessions))
        rows["num_turns"].append(c.num_turns)
        rows["num_questions"].append(len(c.questions))
        rows["json"].append(json.dumps(c.to_dict(), ensure_ascii=False))
    return datasets.Dataset.from_dict(rows)


def from_hf_dataset(ds, where: str = "dataset") -> list[Conversation]:
    out = []
    for i, row in enumerate(ds):
        try:
            out.append(Conversation.from_dict(json.loads(row["json"])))
        except (SchemaError, json.JSONDecodeError, KeyError) as e:
            raise DataError(f"{where}: row {i}: {e}") from None
    return out


def read_hf(path: str | os.PathLike, split: str | None = None) -> list[Conversation]:
    """Load conversations from a `save_to_disk` directory (a Dataset, or a DatasetDict and a split)."""
    import datasets

    path = Path(path)
    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:  # datasets raises several types for a broken directory
        raise DataError(f"{path}: not a readable datasets directory: {e}") from None
    if isinstance(ds, datasets.DatasetDict):
        if split is None:
            return [c for name in ds for c in from_hf_dataset(ds[name], f"{path}[{name}]")]
        if split not in ds:
            raise DataError(f"{path}: no split {split!r} (has {sorted(ds)})")
        ds = ds[split]
    return from_hf_dataset(ds, str(path))


# ---- summaries ---------------------------------------------------------------------------------------
def summarize(convs: list[Conversation]) -> dict[str, Any]:
    cats: Counter = Counter()
    for c in convs:
        for q in c.questions:
            key = f"{q.category_id} {q.category}" if q.category_id is not None else q.category
            cats[key] += 1
    ops = Counter(o.op for c in convs for o in c.gold_ops)
    return {
        "conversations": len(convs),
        "sessions": sum(len(c.sessions) for c in convs),
        "turns": sum(c.num_turns for c in convs),
        "questions": sum(len(c.questions) for c in convs),
        "questions_by_category": dict(sorted(cats.items(), key=lambda kv: str(kv[0]))),
        "gold_ops_by_type": dict(sorted(ops.items())),
    }


def format_summary(s: dict[str, Any]) -> str:
    lines = [
        f"conversations  {s['conversations']}",
        f"sessions       {s['sessions']}",
        f"turns          {s['turns']}",
        f"questions      {s['questions']}",
    ]
    for k, v in s["questions_by_category"].items():
        lines.append(f"  category {k:<28} {v}")
    for k, v in s.get("gold_ops_by_type", {}).items():
        lines.append(f"  gold op {k:<29} {v}")
    return "\n".join(lines)
