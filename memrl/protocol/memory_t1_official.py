"""Memory-T1's released model-output parse, reproduced: the `parsed_output` and the answer its scorer reads.

- `official_parse`: `parse_model_output` of Memory-T1's `temporal_reasoning/full_prompt_eval.py` @ fee86f5
  (greedy "{...}" regex, json.loads, else {}).
- `official_answer`: `parsed_output.get("answer", "")` as `eval/calculate_scores_rl.py` @ 9e3f9a3 reads it.

The memory_t1 answerer keeps this answer beside memrl's own parse, the released-results reader recomputes it,
and `memrl.rewards.timedial_official` scores it the way Memory-T1 published its numbers.
"""

from __future__ import annotations

import json
import re
from typing import Any

_JSON_OBJECT = re.compile(r"\{[\s\S]*\}")  # greedy: first "{" to last "}"


def official_parse(model_output: Any) -> dict:
    """Memory-T1's `parse_model_output`: json.loads of the text from the first "{" to the last "}", else {}."""
    m = _JSON_OBJECT.search(str(model_output or ""))
    if not m:
        return {}
    try:
        value = json.loads(m.group(0))
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def official_answer(parsed_output: Any) -> str:
    """`parsed_output.get("answer", "")` as their scorer reads it ({} or a missing answer -> "")."""
    if not isinstance(parsed_output, dict):
        return ""
    ans = parsed_output.get("answer", "")
    if isinstance(ans, str):
        return ans
    if isinstance(ans, (int, float)) and not isinstance(ans, bool):
        return str(ans)
    return ""  # their `.strip()` would raise on a list or object; scored as no answer
