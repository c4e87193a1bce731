"""Evidence grounding: did the policy select the right memories / sessions / turns?

- `set_match`: Memory-T1's R_ground (1 equal / 0.5 overlap / -1 disjoint).
- `picker_coverage_reward`: Context-Picker's reward (arXiv 2512.14465, Eq. 8): coverage of the mined minimal
  sufficient set, a redundancy penalty while the selection stays within |S_gold| + margin, 0 beyond the
  margin, a format penalty for duplicate or unknown ids. The margin is a schedule parameter (stage I
  relaxed, stage II tight).
- `id_prf`: precision / recall / F1 of id sets (what benchmarks.md section 6.3 recommends over the step).

Ids are compared as stripped strings; callers normalize their id forms first (the parsers do).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from memrl.rewards.base import RewardResult


def _ids(ids: Iterable[Any] | None) -> list[str]:
    return [str(i).strip() for i in (ids or [])]


def set_match(pred: Iterable[Any], gold: Iterable[Any]) -> float:
    """Memory-T1's R_ground: 1.0 if the id sets are equal, 0.5 if they share an id, else -1.0.

    Two empty sets are equal (1.0), exactly as their code: a question without gold evidence rewards an
    empty selection.
    """
    p, g = set(_ids(pred)), set(_ids(gold))
    if p == g:
        return 1.0
    if p & g:
        return 0.5
    return -1.0


def id_prf(pred: Iterable[Any], gold: Iterable[Any]) -> dict[str, float]:
    """Set precision, recall and F1 of predicted ids, each in [0, 1]; both empty -> all 1.0."""
    p, g = set(_ids(pred)), set(_ids(gold))
    if not p and not g:
        return {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    tp = len(p & g)
    precision = tp / len(p) if p else 0.0
    recall = tp / len(g) if g else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def picker_coverage_reward(
    selected: Sequence[Any],
    minimal: Iterable[Any],
    margin: int = 2,
    *,
    redundancy_coef: float = 0.1,
    candidates: Iterable[Any] | None = None,
    invalid_penalty: float = -1.0,
) -> RewardResult:
    """Context-Picker's redundancy-aware coverage reward, in [0, 1] for valid selections, else `invalid_penalty`.

        Cov   = |S ∩ S_gold| / |S_gold|                  (1 when S_gold is empty)
        extra = max(0, |S| - |S_gold|)
        r     = max(0, Cov - redundancy_coef * extra)    if |S| <= |S_gold| + margin
              = 0                                        if |S| >  |S_gold| + margin
              = invalid_penalty                          if S repeats an id or names one outside `candidates`

    The paper states this shape (recall minus a penalty proportional to over-selection inside the margin,
    0 beyond it, -1 for malformed ids); its constant was not recoverable from the text, so `redundancy_coef`
    is ours (0.1 per extra id). The floor at 0 keeps over-selection inside the margin from scoring below
    over-selection beyond it.
    """
    sel = _ids(selected)
    gold = set(_ids(minimal))
    n_sel = len(sel)
    duplicate = n_sel != len(set(sel))
    unknown = candidates is not None and bool(set(sel) - set(_ids(candidates)))
    if duplicate or unknown:
        return RewardResult(
            float(invalid_penalty),
            {"valid": 0.0, "duplicate_ids": float(duplicate), "unknown_ids": float(unknown)},
        )
    coverage = len(set(sel) & gold) / len(gold) if gold else 1.0
    extra = max(0, n_sel - len(gold))
    within = n_sel <= len(gold) + margin
    value = max(0.0, coverage - redundancy_coef * extra) if within else 0.0
    return RewardResult(
        value,
        {"valid": 1.0, "coverage": coverage, "extra": float(extra), "within_margin": float(within)},
    )
