"""memory_t1: Memory-T1's answer agent over time-filtered sessions.

Candidates are sessions only: filtered to the question's time window, ranked with BM25 (top 10), rendered with
`<session_k>` ids (prompt `memory_t1`, Memory-T1's `build_cot_prompt`). The policy writes JSON
`{"selected_memory": ["<session_3>", ...], "answer": "..."}`; ids are normalized to "session_3" (items without
a session number are dropped, as in Memory-T1's reward). Memory-T1's own parse of the raw output
(`memrl.protocol.memory_t1_official`) is kept beside memrl's, for `timedial_official`. Reward: 0.6 accuracy
(TIME-Dial task accuracy by default) + 0.2 evidence (session set match) + 0.2 temporal consistency (R_s, R_f);
-1 if the JSON does not parse.
"""

from __future__ import annotations

import json
from typing import Any

from memrl.protocol.json_repair import parse_json_lenient
from memrl.protocol.memory_t1_official import official_answer, official_parse
from memrl.protocol.modes.base import AnswerMode, RewardPreset
from memrl.protocol.parsing import AnswerParse, normalize_session_id, opt_str
from memrl.protocol.prompts import PROMPTS, format_sessions_t1, locomo_time
from memrl.protocol.steps import AnswerRequest, sessions_by_id


def _answer_str(x: Any) -> str | None:
    if x is None:
        return None
    if isinstance(x, list):
        return " ".join(str(v) for v in x)
    return opt_str(x)


def parse_sessions_json(text: str) -> AnswerParse:
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


def _target(parse: AnswerParse) -> str:
    return json.dumps({"selected_memory": [f"<{s}>" for s in parse.selected_ids or []], "answer": parse.answer or ""})


def _fields(request: AnswerRequest) -> dict[str, Any]:
    q = request.question
    sessions = sessions_by_id(request.conversation)
    chosen = [sessions[c.doc_id] for c in request.candidates if c.doc_id in sessions]
    now = locomo_time(q.question_time) if q.question_time else "Now"
    return {"now": now, "question": q.question, "sessions": format_sessions_t1(chosen)}


def _official(text: str) -> str:
    """The answer Memory-T1's published scorer reads from this raw output."""
    return official_answer(official_parse(text))


MEMORY_T1 = AnswerMode(
    name="memory_t1",
    prompt=PROMPTS["memory_t1"],
    fields=_fields,
    parser=parse_sessions_json,
    target=_target,
    reward=RewardPreset({"accuracy": 0.6, "evidence": 0.2, "temporal": 0.2}, -1.0, "timedial", kind="temporal"),
    candidates=("sessions",),
    official_answer=_official,
    summary="Memory-T1: JSON selected sessions + answer over time-filtered sessions; 0.6 acc + 0.2 ev + 0.2 temporal",
)
