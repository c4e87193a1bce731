"""Reading `memrl synth` shard files back, with one-line errors that name the shard.

Shards are written by an atomic rename, so a bad shard means the file was damaged after the fact (a full
disk, a copy cut short, an editor). Every problem raises `DataError` naming the shard file and line:
invalid UTF-8, invalid JSON, a truncated last line, a record that is not a conversation, and a shard that
holds a different number of conversations than its index range says.
"""

from __future__ import annotations

from pathlib import Path

from memrl.data.io import DataError, iter_jsonl
from memrl.data.schema import Conversation, SchemaError
from memrl.data.validate import conversation_problem

_HINT = "; delete the shard and rerun `memrl synth` with the same config to rebuild it"


def read_shard(path: str | Path, expected: int | None = None) -> list[str]:
    """The shard's conversation lines (as written), each checked; `expected` = how many it must hold."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: shard missing{_HINT}")
    lines: list[str] = []
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw and not raw.endswith(b"\n"):
            last = raw.count(b"\n") + 1
            raise DataError(f"{path}:{last}: shard truncated (the last line has no newline){_HINT}")
        rows = raw.split(b"\n")
        for lineno, obj in iter_jsonl(path):
            try:
                conv = Conversation.from_dict(obj)
            except SchemaError as e:
                raise DataError(f"{path}:{lineno}: {e}") from None
            problem = conversation_problem(conv)
            if problem:
                raise DataError(f"{path}:{lineno}: {problem}")
            lines.append(rows[lineno - 1].decode("utf-8").rstrip("\r"))
    except DataError as e:
        msg = str(e)
        raise DataError(msg if msg.endswith(_HINT) else f"corrupt shard {msg}{_HINT}") from None
    if expected is not None and len(lines) != expected:
        raise DataError(f"corrupt shard {path}: holds {len(lines)} conversations, expected {expected}{_HINT}")
    return lines
