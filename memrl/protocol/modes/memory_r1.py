"""memory_r1: Memory-R1's answer agent ("memory distillation").

Prompt `memory_r1_answer` (Mem0's answer prompt + Memory-R1 Fig. 11): the memories retrieved top-k per speaker
(30 + 30), listed in bank order under each speaker with their timestamps. The policy writes the memories it
selects, then `**Answer:** <answer>`. Parse: the answer is the first non-empty line after the last `**Answer:**`
(or, failing that, a line starting with `Answer:`); the selected ids are the bracketed ids (`[3]`, as our
prompts number memories) before the marker, and the selected lines are kept verbatim in `selected_texts`
because Memory-R1's own format quotes memories without ids. Reward: accuracy (EM by default, Memory-R1's
choice; no format term, so output without the marker scores 0 like a wrong answer), plus the F1 of the
selected ids when an "evidence" weight is set.
"""

from __future__ import annotations

import re
from typing import Any

from memrl.protocol.modes.base import AnswerMode, RewardPreset, ids_then_answer
from memrl.protocol.parsing import AnswerParse, bracket_ids
from memrl.protocol.prompts import PROMPTS, format_memories_timestamped
from memrl.protocol.steps import AnswerRequest, as_memory_fields

_BOLD_ANSWER = re.compile(r"\*\*\s*answer\s*:?\s*\*\*\s*:?", re.IGNORECASE)
_PLAIN_ANSWER = re.compile(r"(?im)^[ \t>*_#-]*answer\s*:")
_SELECTION_HEADER = re.compile(r"\*\*\s*memories selected as relevant\s*:?\s*\*\*\s*:?", re.IGNORECASE)


def parse_ids_then_answer(text: str) -> AnswerParse:
    """Selected `[id]`s (and lines), then the answer after the last `**Answer:**` marker."""
    marks = list(_BOLD_ANSWER.finditer(text)) or list(_PLAIN_ANSWER.finditer(text))
    if not marks:
        return AnswerParse(ok=False, error="no **Answer:** marker")
    mark = marks[-1]
    after = text[mark.end():]
    answer = next((ln.strip().strip("*").strip() for ln in after.splitlines() if ln.strip().strip("*").strip()), "")
    before = text[: mark.start()]
    header = list(_SELECTION_HEADER.finditer(before))
    selection = before[header[-1].end():] if header else before
    ids = bracket_ids(selection)
    lines = [ln.strip().lstrip("-•*").strip() for ln in selection.splitlines()]
    if not answer:
        return AnswerParse(selected_ids=ids, selected_texts=[ln for ln in lines if ln], ok=False,
                           error="empty answer after **Answer:**")
    return AnswerParse(selected_ids=ids, answer=answer, ok=True, selected_texts=[ln for ln in lines if ln])


def _fields(request: AnswerRequest) -> dict[str, Any]:
    q, cands = request.question, request.candidates
    speakers = list(request.conversation.speakers) if request.conversation is not None else []
    first = speakers[0] if speakers else (cands[0].owner if cands and cands[0].owner else "speaker 1")
    others = [s for s in speakers[1:]] or ["speaker 2"]
    mine = [as_memory_fields(c) for c in cands if c.owner == first]
    rest = [as_memory_fields(c) for c in cands if c.owner != first]
    return {"speaker_1": first, "speaker_1_memories": format_memories_timestamped(mine),
            "speaker_2": " / ".join(others), "speaker_2_memories": format_memories_timestamped(rest),
            "question": q.question}


MEMORY_R1 = AnswerMode(
    name="memory_r1",
    prompt=PROMPTS["memory_r1_answer"],
    fields=_fields,
    parser=parse_ids_then_answer,
    target=ids_then_answer,
    reward=RewardPreset({"accuracy": 1.0}, 0.0, "em", kind="answer", name="memory_r1"),  # compact shares it
    summary="Memory-R1's answer agent: selected memories, then **Answer:**; EM",
)
