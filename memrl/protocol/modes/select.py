"""select: a picker with a frozen reader (ours; Context-Picker's division of labour, sized for tiny models).

Prompt `compact_select`: memories listed `[i] text (date)`; the policy writes the id of the memory that answers
(`[2]`) and nothing else. A frozen extractive reader (`memrl.protocol.reader.extract_answer`) answers from the
first selected id: the answer environment precomputes what it answers from each candidate (the row's
`candidate_answers`, so scoring is a lookup) and the LLM answerer reads with it. Reward: LoCoMo F1 of the
reader's answer; -1 if no offered id is written. Over banks that keep stale versions (an add-only manager),
choosing the current memory is the policy's decision. Never scored leniently: the reader, not the model,
answers.
"""

from __future__ import annotations

from memrl.protocol.modes.base import AnswerMode, RewardPreset
from memrl.protocol.modes.compact import memory_list_fields
from memrl.protocol.parsing import AnswerParse, bracket_ids
from memrl.protocol.prompts import PROMPTS


def parse_ids(text: str) -> AnswerParse:
    """Bracketed memory ids only ("[2]"); no answer (the frozen reader answers from the first one)."""
    ids = bracket_ids(text)
    if not ids:
        return AnswerParse(ok=False, error="no [id] selected")
    return AnswerParse(selected_ids=ids, ok=True)


def _target(parse: AnswerParse) -> str:
    return " ".join(f"[{i}]" for i in (parse.selected_ids or []))


SELECT = AnswerMode(
    name="select",
    prompt=PROMPTS["compact_select"],
    fields=memory_list_fields,
    parser=parse_ids,
    target=_target,
    reward=RewardPreset({"accuracy": 1.0}, -1.0, "locomo_f1", kind="reader"),
    reader=True,
    summary="the id of one memory; a frozen extractive reader answers from it; LoCoMo F1 of the reader's answer",
)
