"""compact: Memory-R1's answer task for tiny models.

Prompt `compact_answer`: memories listed `[i] text (date)` under a short instruction. The policy writes the ids
it selects, then `**Answer:** <answer>`: Memory-R1's output shape, so it shares memory_r1's parser and reward
preset (accuracy, EM by default; the reward keeps memory_r1's name in training logs).
"""

from __future__ import annotations

from typing import Any

from memrl.protocol.modes.base import AnswerMode, ids_then_answer
from memrl.protocol.modes.memory_r1 import MEMORY_R1, parse_ids_then_answer
from memrl.protocol.prompts import PROMPTS, format_memories_compact
from memrl.protocol.steps import AnswerRequest, as_memory_fields


def memory_list_fields(request: AnswerRequest, long_dates: bool = False) -> dict[str, Any]:
    """{memories: "[i] text (date)" lines, question}: the fields of the compact templates."""
    cands = request.candidates
    memories = format_memories_compact([as_memory_fields(c) for c in cands], [c.id for c in cands],
                                       long_dates=long_dates)
    return {"memories": memories, "question": request.question.question}


COMPACT = AnswerMode(
    name="compact",
    prompt=PROMPTS["compact_answer"],
    fields=memory_list_fields,
    parser=parse_ids_then_answer,
    target=ids_then_answer,
    reward=MEMORY_R1.reward,
    summary="memory_r1's task for tiny models: [i] memories, ids then **Answer:**; EM",
)
