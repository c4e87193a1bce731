"""Parse policy completions into operations (manager); the result type of an answer agent's parse.

Only the completion is ever parsed: a dialogue turn that happens to look like a JSON op is prompt data and
never reaches these functions. Output that does not parse is a *result* (`ok=False` with an `error`
string), scored as a format failure by the rewards; nothing here raises on model output.

Manager output, two accepted shapes:
- Mem0 / Memory-R1 whole list: `{"memory": [{"id", "text", "event", "old_memory"}]}`, event in
  ADD | UPDATE | DELETE | NONE. Mem0 lists every existing memory, unchanged ones with event NONE: those
  become NOOP ops carrying their id. An ADD's id is the model's invented "new id" and is dropped
  (`Op.id` is None for ADD; the bank assigns ids).
- Compact: `{"ops": [{"op", "id", "text"}]}` or a bare list of op objects (a single op object is accepted
  too, flagged `recovered`). Items may say "event" instead of "op".
NOOP and NONE are the same op (`memrl.memory.ops.normalize_op_name`). Optional per item: "event_time" or
"time" (kept as a string). Text fields are coerced to str, ids to stripped str. UPDATE and DELETE need an
id; ADD and UPDATE need a "text". One malformed item fails the whole output (no partial application).

Answer output: each answer mode parses its own format (its file in `memrl.protocol.modes` documents it);
this module holds the `AnswerParse` they all return and the pieces they share (`bracket_ids`,
`normalize_session_id`, `opt_str`, `clean_id`).

JSON recovery (sets `recovered=True`), only where the reading is unambiguous: a ```json fence, prose
before/after the JSON value, trailing commas, single-quoted strings, and up to two missing closing brackets
at the very end (a truncated generation). Two different JSON values in one completion are ambiguous and
fail.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from memrl.memory.ops import Op, normalize_op_name
from memrl.protocol.json_repair import parse_json_lenient

_SESSION_NUM = re.compile(r"session_(\d+)", re.IGNORECASE)
_SHORT_SESSION = re.compile(r"^[<\[(]?\s*[Ss](\d+)\s*[>\])]?$")


def normalize_session_id(x: Any) -> str | None:
    """"<session_3>", "session_3", "Session_3 (May 8)", "S3" -> "session_3"; None if no session number.

    Memory-T1 keeps the first `session_\\d+` match of each selected item and drops the rest; "S3" is
    LoCoMo's short form.
    """
    s = str(x).strip()
    m = _SESSION_NUM.search(s) or _SHORT_SESSION.match(s)
    return f"session_{m.group(1).lstrip('0') or '0'}" if m else None




@dataclass
class ManagerParse:
    ops: list[Op] = field(default_factory=list)
    ok: bool = False
    error: str | None = None
    recovered: bool = False  # the JSON needed repair (fence, prose, trailing comma, quotes, closers)
    style: Literal["mem0", "ops"] | None = None


@dataclass
class AnswerParse:
    selected_ids: list[str] = field(default_factory=list)
    answer: str | None = None
    rationale: str | None = None
    ok: bool = False
    error: str | None = None
    recovered: bool = False
    selected_texts: list[str] = field(default_factory=list)  # memory_r1: the selection lines, verbatim
    raw: str | None = None  # the completion parsed (set by LLM policies; evaluation keeps it and scores it leniently)


# ---- manager ----------------------------------------------------------------------------------------------
def opt_str(x: Any) -> str | None:
    """A model-written value as text (objects and lists as JSON); None stays None."""
    if x is None:
        return None
    if isinstance(x, (dict, list)):
        return json.dumps(x, ensure_ascii=False)
    return str(x)


def _to_op(item: Any, where: str) -> tuple[Op | None, str | None]:
    if not isinstance(item, dict):
        return None, f"{where}: expected an object, got {type(item).__name__}"
    raw = item.get("event", item.get("op", item.get("operation")))
    name = normalize_op_name(raw)
    if name is None:
        return None, f"{where}: unknown operation {raw!r}" if raw is not None else f"{where}: no 'event'/'op'"
    raw_id = item.get("id")
    op_id = None if raw_id is None else (opt_str(raw_id) or "").strip() or None
    text = opt_str(item.get("text"))
    if name in ("UPDATE", "DELETE") and op_id is None:
        return None, f"{where}: {name} needs an 'id'"
    if name in ("ADD", "UPDATE") and text is None:
        return None, f"{where}: {name} needs a 'text'"
    return (
        Op(
            op=name,
            id=None if name == "ADD" else op_id,
            text=text,
            old_text=opt_str(item.get("old_memory", item.get("old_text"))),
            event_time=opt_str(item.get("event_time", item.get("time"))),
        ),
        None,
    )


def parse_manager_output(text: Any) -> ManagerParse:
    """Parse a memory-manager completion (Mem0 whole list or compact op list) into `Op`s. Never raises."""
    value, recovered, error = parse_json_lenient(text)
    if value is None:
        return ManagerParse(ok=False, error=error, recovered=recovered)
    style: Literal["mem0", "ops"]
    if isinstance(value, dict) and "memory" in value:
        items, style, key = value["memory"], "mem0", "memory"
    elif isinstance(value, dict) and "ops" in value:
        items, style, key = value["ops"], "ops", "ops"
    elif isinstance(value, list):
        items, style, key = value, "ops", ""
    elif isinstance(value, dict) and any(k in value for k in ("op", "event", "operation")):
        items, style, key, recovered = [value], "ops", "", True
    else:
        keys = sorted(value)[:5] if isinstance(value, dict) else []
        return ManagerParse(ok=False, error=f"expected a 'memory' or 'ops' list, got keys {keys}", recovered=recovered)
    if not isinstance(items, list):
        return ManagerParse(ok=False, error=f"'{key}' must be a list, got {type(items).__name__}",
                            recovered=recovered, style=style)
    ops = []
    for i, item in enumerate(items):
        op, err = _to_op(item, f"{key}[{i}]" if key else f"[{i}]")
        if err is not None:
            return ManagerParse(ok=False, error=err, recovered=recovered, style=style)
        ops.append(op)
    return ManagerParse(ops=ops, ok=True, recovered=recovered, style=style)



def ops_json(ops: list[dict[str, Any]]) -> str:
    """The compact op-list completion (`{"ops": [...]}`) a rule-based manager writes; an empty list is written
    as one NOOP. `parse_manager_output` reads it back like any model output."""
    return json.dumps({"ops": ops or [{"op": "NOOP"}]}, ensure_ascii=False)


# ---- shared by the answer modes' parsers ----------------------------------------------------------------------
_BRACKET_ID = re.compile(r"\[\s*([A-Za-z0-9_:.\-]{1,64})\s*\]")
_ID_STRIP = " \t\r\n<>[]()\"'"


def bracket_ids(text: str) -> list[str]:
    """The bracketed ids of a text ("[2] [5]" -> ["2", "5"]), first occurrence order, without repeats."""
    return list(dict.fromkeys(m.group(1) for m in _BRACKET_ID.finditer(text)))


def clean_id(x: Any) -> str:
    """A model-written id without surrounding brackets, quotes and whitespace."""
    return (opt_str(x) or "").strip(_ID_STRIP)
