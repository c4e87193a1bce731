"""picker: Context-Picker (arXiv 2512.14465): a rationale and the minimal evidence subset, no answer.

Candidates are turns by default (or memories), listed `[id] (date) text` (prompt `context_picker`). The policy
writes JSON `{"rationale": "...", "selected": ["id", ...]}` (also accepted: "evidence", "selected_ids", "ids");
ids keep their order and duplicates (the reward penalizes them). Reward: coverage of the minimal sufficient set
(leave-one-out mined `minimal_evidence`, else the gold evidence) with a redundancy margin; -1 for malformed
output, duplicates or ids that were not offered. Only evidence metrics apply in evaluation.
"""

from __future__ import annotations

import json
from typing import Any

from memrl.protocol.json_repair import parse_json_lenient
from memrl.protocol.modes.base import AnswerMode, RewardPreset
from memrl.protocol.parsing import AnswerParse, clean_id, opt_str
from memrl.protocol.prompts import PROMPTS, format_candidates
from memrl.protocol.steps import AnswerRequest, as_memory_fields

_PICKER_KEYS = ("selected", "evidence", "selected_ids", "ids")


def parse_rationale_and_ids(text: str) -> AnswerParse:
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
    ids = [clean_id(x) for x in raw]
    if any(not i for i in ids):
        return AnswerParse(ok=False, recovered=recovered, error=f"'{key}' contains an empty id")
    rationale = opt_str(value.get("rationale"))
    return AnswerParse(selected_ids=ids, rationale=rationale, ok=True, recovered=recovered)


def _target(parse: AnswerParse) -> str:
    return json.dumps({"rationale": parse.rationale or "", "selected": list(parse.selected_ids or [])})


def _fields(request: AnswerRequest) -> dict[str, Any]:
    cands = request.candidates
    return {"question": request.question.question,
            "candidates": format_candidates([as_memory_fields(c) for c in cands], [c.id for c in cands])}


PICKER = AnswerMode(
    name="picker",
    prompt=PROMPTS["context_picker"],
    fields=_fields,
    parser=parse_rationale_and_ids,
    target=_target,
    reward=RewardPreset({"coverage": 1.0}, -1.0, None, kind="coverage"),
    candidates=("turns", "memories", "sessions"),
    answers=False,
    summary="Context-Picker: a rationale and the minimal evidence ids, no answer; coverage with a redundancy margin",
)
