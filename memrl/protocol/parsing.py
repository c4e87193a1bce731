"""Parse policy completions into operations (manager) or selections + answers (answer agent / picker).

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

Answer output, by mode:
- "memory_r1": free text, the selected memories first, then `**Answer:** <answer>` (Memory-R1, anchors
  section 1.2). The answer is the first non-empty line after the last `**Answer:**` (or, failing that, a
  line starting with `Answer:`). Selected ids are the bracketed ids (`[3]`, as our prompts number
  memories) before the marker; the selected lines themselves are kept in `selected_texts` because
  Memory-R1's own format quotes memories without ids.
- "memory_t1": JSON `{"selected_memory": ["<session_3>", ...], "answer": "..."}`; ids normalized to
  "session_3" (items without a session number are dropped, as in Memory-T1's reward).
- "picker": JSON `{"rationale": "...", "selected": ["id", ...]}` (also accepted: "evidence",
  "selected_ids", "ids"); no answer. Ids keep their order and duplicates (the reward penalizes them).
- "select": bracketed memory ids only (`[2]`); no answer (a frozen reader answers from the first id).
- "plain": the whole stripped completion is the answer.
- "short": a few words in free text (what an instruct model says when asked for a short answer); the answer
  is extracted by `memrl.protocol.lenient.lenient_answer` (an answer label, else the first sentence), so an
  untrained model is scored on what it answers, not on a marker. Empty output is the only format failure.

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
from memrl.protocol.lenient import lenient_answer

ANSWER_PARSE_MODES = ("memory_r1", "memory_t1", "picker", "select", "plain", "short")
AnswerMode = Literal["memory_r1", "memory_t1", "picker", "select", "plain", "short"]

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
def _opt_str(x: Any) -> str | None:
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
    op_id = None if raw_id is None else (_opt_str(raw_id) or "").strip() or None
    text = _opt_str(item.get("text"))
    if name in ("UPDATE", "DELETE") and op_id is None:
        return None, f"{where}: {name} needs an 'id'"
    if name in ("ADD", "UPDATE") and text is None:
        return None, f"{where}: {name} needs a 'text'"
    return (
        Op(
            op=name,
            id=None if name == "ADD" else op_id,
            text=text,
            old_text=_opt_str(item.get("old_memory", item.get("old_text"))),
            event_time=_opt_str(item.get("event_time", item.get("time"))),
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


# ---- answer agent / picker --------------------------------------------------------------------------------
_BOLD_ANSWER = re.compile(r"\*\*\s*answer\s*:?\s*\*\*\s*:?", re.IGNORECASE)
_PLAIN_ANSWER = re.compile(r"(?im)^[ \t>*_#-]*answer\s*:")
_BRACKET_ID = re.compile(r"\[\s*([A-Za-z0-9_:.\-]{1,64})\s*\]")
_SELECTION_HEADER = re.compile(r"\*\*\s*memories selected as relevant\s*:?\s*\*\*\s*:?", re.IGNORECASE)
_ID_STRIP = " \t\r\n<>[]()\"'"


def _clean_id(x: Any) -> str:
    return (_opt_str(x) or "").strip(_ID_STRIP)


def _parse_select(text: str) -> AnswerParse:
    """"select" mode: bracketed memory ids only ("[2]"); a frozen reader answers from the first one."""
    ids = list(dict.fromkeys(m.group(1) for m in _BRACKET_ID.finditer(text)))
    if not ids:
        return AnswerParse(ok=False, error="no [id] selected")
    return AnswerParse(selected_ids=ids, ok=True)


def _parse_memory_r1(text: str) -> AnswerParse:
    marks = list(_BOLD_ANSWER.finditer(text)) or list(_PLAIN_ANSWER.finditer(text))
    if not marks:
        return AnswerParse(ok=False, error="no **Answer:** marker")
    mark = marks[-1]
    after = text[mark.end():]
    answer = next((ln.strip().strip("*").strip() for ln in after.splitlines() if ln.strip().strip("*").strip()), "")
    before = text[: mark.start()]
    header = list(_SELECTION_HEADER.finditer(before))
    selection = before[header[-1].end():] if header else before
    ids = list(dict.fromkeys(m.group(1) for m in _BRACKET_ID.finditer(selection)))
    lines = [ln.strip().lstrip("-•*").strip() for ln in selection.splitlines()]
    if not answer:
        return AnswerParse(selected_ids=ids, selected_texts=[ln for ln in lines if ln], ok=False,
                           error="empty answer after **Answer:**")
    return AnswerParse(selected_ids=ids, answer=answer, ok=True, selected_texts=[ln for ln in lines if ln])


def _answer_str(x: Any) -> str | None:
    if x is None:
        return None
    if isinstance(x, list):
        return " ".join(str(v) for v in x)
    return _opt_str(x)


def _parse_memory_t1(text: str) -> AnswerParse:
    value, recovered, error = parse_json_lenient(text)
    if not isinstance(value, dict):
        return AnswerParse(ok=False, recovered=recovered,
                           error=error or f"expected a JSON object, got {type(value).__name__}")
    raw = value.get("selected_memory", [])
    items = raw if isinstance(raw, list) else [raw]
    ids = []
    for item in items:
        sid = normalize_session_id(item)
        if sid is not None:
            ids.append(sid)
    return AnswerParse(selected_ids=ids, answer=_answer_str(value.get("answer")), ok=True, recovered=recovered)


_PICKER_KEYS = ("selected", "evidence", "selected_ids", "ids")


def _parse_picker(text: str) -> AnswerParse:
    value, recovered, error = parse_json_lenient(text)
    if not isinstance(value, dict):
        return AnswerParse(ok=False, recovered=recovered,
                           error=error or f"expected a JSON object, got {type(value).__name__}")
    key = next((k for k in _PICKER_KEYS if k in value), None)
    if key is None:
        return AnswerParse(ok=False, recovered=recovered, error=f"no id list (expected one of {list(_PICKER_KEYS)})")
    raw = value[key]
    if not isinstance(raw, list):
        return AnswerParse(ok=False, recovered=recovered, error=f"'{key}' must be a list, got {type(raw).__name__}")
    ids = [_clean_id(x) for x in raw]
    if any(not i for i in ids):
        return AnswerParse(ok=False, recovered=recovered, error=f"'{key}' contains an empty id")
    rationale = _opt_str(value.get("rationale"))
    return AnswerParse(selected_ids=ids, rationale=rationale, ok=True, recovered=recovered)


def parse_answer_output(text: Any, mode: AnswerMode | str = "memory_r1") -> AnswerParse:
    """Parse an answer-agent / picker completion in one of `ANSWER_PARSE_MODES`. Never raises on model output.

    An unknown mode is a programming error and raises ValueError.
    """
    if mode not in ANSWER_PARSE_MODES:
        raise ValueError(f"unknown answer mode {mode!r}; choose one of {list(ANSWER_PARSE_MODES)}")
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    if not text.strip():
        return AnswerParse(ok=False, error="empty output")
    if mode == "memory_r1":
        return _parse_memory_r1(text)
    if mode == "memory_t1":
        return _parse_memory_t1(text)
    if mode == "picker":
        return _parse_picker(text)
    if mode == "select":
        return _parse_select(text)
    if mode == "short":
        answer, rule = lenient_answer(text)
        return AnswerParse(answer=answer, ok=answer is not None, raw=text, recovered=rule != "label",
                           error=None if answer is not None else "no answer in the output")
    return AnswerParse(answer=text.strip(), ok=True)
