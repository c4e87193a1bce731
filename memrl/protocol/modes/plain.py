"""plain: the whole stripped completion is the answer; no prompt of its own.

A parse-and-reward mode for datasets that bring their own prompt (`make_answer_reward("plain")`): it is not
offered to the answer environment or to evaluation, which render prompts. Reward: accuracy (EM by default).
"""

from __future__ import annotations

from memrl.protocol.modes.base import AnswerMode, RewardPreset, answer_only
from memrl.protocol.parsing import AnswerParse


def parse_whole(text: str) -> AnswerParse:
    return AnswerParse(answer=text.strip(), ok=True)


PLAIN = AnswerMode(
    name="plain",
    prompt=None,
    fields=None,
    parser=parse_whole,
    target=answer_only,
    reward=RewardPreset({"accuracy": 1.0}, 0.0, "em", kind="accuracy"),
    summary="the whole completion is the answer (no prompt: datasets bring their own); EM",
)
