"""Format, validity and cost terms. Each returns a float; penalties and costs are <= 0.

- `format_reward`: 0 when the completion parsed, `penalty` (-1 by default: Memory-T1, Context-Picker) when not.
- `length_cost`, `redundancy_cost`: shaping against long answers and over-selection.
- `invalid_op_penalty`: the manager named unknown ids / empty texts (an `ApplyResult`'s rejections); the
  complement of Mem-alpha's r2 (fraction of tool calls that execute).
- `compression_reward`: Mem-alpha's r3 = 1 - memory_len / chunks_len (arXiv 2509.25911, Eq. 1).
"""

from __future__ import annotations

from typing import Any


def format_reward(ok: bool, penalty: float = -1.0) -> float:
    """0.0 for output that parsed, `penalty` for output that did not."""
    return 0.0 if ok else float(penalty)


def length_cost(text_or_len: Any, budget: int, coef: float = 0.1) -> float:
    """-coef * min(1, excess / budget) for whitespace words beyond `budget`; in [-coef, 0].

    Takes the text or a precomputed length (e.g. completion tokens).
    """
    n = text_or_len if isinstance(text_or_len, int) else len(str(text_or_len or "").split())
    excess = max(0, n - budget)
    return -coef * min(1.0, excess / max(budget, 1))


def redundancy_cost(num_selected: int, allowed: int, coef: float = 0.1) -> float:
    """-coef * (fraction of the selection beyond `allowed` ids); in [-coef, 0]."""
    excess = max(0, int(num_selected) - int(allowed))
    return -coef * excess / max(int(num_selected), 1)


def invalid_op_penalty(result_or_invalid: Any, total: int | None = None, coef: float = 1.0) -> float:
    """-coef * (rejected ops / all ops) for one manager step; in [-coef, 0]; 0 when no op was issued.

    Pass an `ApplyResult` (anything with `num_valid` / `num_invalid`) or the invalid count and the total.
    """
    if hasattr(result_or_invalid, "num_invalid"):
        invalid = int(result_or_invalid.num_invalid)
        total = invalid + int(result_or_invalid.num_valid)
    else:
        invalid = int(result_or_invalid)
        total = int(total if total is not None else invalid)
    if total <= 0:
        return 0.0
    return -coef * min(invalid, total) / total


def compression_reward(memory_len: int, chunks_len: int) -> float:
    """Mem-alpha's r3 = 1 - memory_len / chunks_len, clipped to [-1, 1] (0 when there is no input yet).

    Lengths in the same unit (tokens or words). Mem-alpha weights it by beta = 0.05.
    """
    if chunks_len <= 0:
        return 0.0
    return max(-1.0, min(1.0, 1.0 - memory_len / chunks_len))
