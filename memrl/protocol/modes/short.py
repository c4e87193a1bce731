"""short: a free-text answer agent (the instruct model asked for a few-word answer).

Prompt `short_answer`: the compact memory list, dates written as the answers are written ("8 May 2023", chosen
on conv-26's validation slice; compact and select keep ISO dates, their results predate it). The completion is
a few words with no marker: the answer is extracted by `memrl.protocol.lenient.lenient_answer` (an answer label,
else the first sentence), so an untrained model is scored on what it answers, not on a marker. Empty output is
the only format failure. Reward: LoCoMo F1 of that answer, 0 for empty output.
"""

from __future__ import annotations

from typing import Any

from memrl.protocol.lenient import lenient_answer
from memrl.protocol.modes.base import AnswerMode, RewardPreset, answer_only
from memrl.protocol.modes.compact import memory_list_fields
from memrl.protocol.parsing import AnswerParse
from memrl.protocol.prompts import PROMPTS
from memrl.protocol.steps import AnswerRequest


def parse_free_text(text: str) -> AnswerParse:
    answer, rule = lenient_answer(text)
    return AnswerParse(answer=answer, ok=answer is not None, raw=text, recovered=rule != "label",
                       error=None if answer is not None else "no answer in the output")


def _fields(request: AnswerRequest) -> dict[str, Any]:
    return memory_list_fields(request, long_dates=True)


SHORT = AnswerMode(
    name="short",
    prompt=PROMPTS["short_answer"],
    fields=_fields,
    parser=parse_free_text,
    target=answer_only,
    reward=RewardPreset({"accuracy": 1.0}, 0.0, "locomo_f1", kind="accuracy"),
    summary="a few words, no marker, extracted leniently; LoCoMo F1",
)
