"""Weighted combinations of reward terms, and the answer rewards of the systems we reproduce.

`CompositeReward(weights)` sums `weight * term` over the terms that apply (a term given as None does not
apply and is left out, not counted as 0) and returns the total with a breakdown of every raw term, so a
config can reweight without code. Output that did not parse short-circuits to `parse_failure`.

One function per reward kind (`RewardPreset.kind`); each answer mode names its kind and its default weights,
parse-failure value and metric in its `RewardPreset` (`memrl.protocol.modes`), and a call may override any:
- `memory_t1_reward` ("temporal"): 0.6 accuracy + 0.2 evidence (set match) + 0.2 temporal (R_s/R_f); -1 on
  parse failure. Range [-0.65, 1] for parsed output (0.6 * -0.5 + 0.2 * -1 + 0.2 * -0.75), so [-1, 1] overall.
- `memory_r1_answer_reward` ("answer"): the answer agent's outcome reward, EM (or any accuracy metric);
  Memory-R1 has no format term, so an output without `**Answer:**` scores 0 like a wrong answer. Range [0, 1].
- `context_picker_reward` ("coverage"): Context-Picker's redundancy-aware coverage; -1 on parse failure.
  Range [-1, 1].
- `select_answer_reward` ("reader"): a picker with a frozen reader (ours, Context-Picker's division of labour
  at tiny scale): the policy selects memory ids, a frozen extractive reader answers from the first one, and
  the reader's answer is scored (LoCoMo F1 by default); -1 on parse failure or an id that was not offered.
  Range [-1, 1].
- `plain_answer_reward` ("accuracy"): accuracy of the parsed answer: the whole completion (EM), or the
  few-word answer extracted leniently (`memrl.protocol.lenient`; LoCoMo F1), 0 for empty output. Range [0, 1].

The functions take a parse result by duck typing (`ok`, `answer`, `selected_ids`: the fields of
`memrl.protocol.parsing.AnswerParse`), so this module does not import the policies layer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from memrl.protocol import modes
from memrl.protocol.modes import RewardPreset
from memrl.protocol.parsing import normalize_session_id
from memrl.rewards.accuracy import accuracy
from memrl.rewards.base import RewardResult
from memrl.rewards.evidence import id_prf, picker_coverage_reward, set_match
from memrl.rewards.temporal import temporal_consistency


class CompositeReward:
    """total = sum(weights[name] * value) over the terms that apply; `parse_failure` if the output did not parse.

    Terms may be floats or `RewardResult`s (whose breakdown is kept as "name/part"). A term without a weight
    is recorded in the breakdown but not summed.
    """

    def __init__(self, weights: Mapping[str, float], parse_failure: float = -1.0):
        for name, w in weights.items():
            if not isinstance(w, (int, float)) or not math.isfinite(w):
                raise ValueError(f"reward weight {name!r} must be a finite number, got {w!r}")
        self.weights = {str(k): float(v) for k, v in weights.items()}
        self.parse_failure = float(parse_failure)

    def __call__(self, terms: Mapping[str, float | RewardResult | None], ok: bool = True) -> RewardResult:
        if not ok:
            return RewardResult(self.parse_failure, {"format": self.parse_failure})
        total, breakdown = 0.0, {"format": 0.0}
        for name, term in terms.items():
            if term is None:
                continue
            if isinstance(term, RewardResult):
                breakdown.update({f"{name}/{k}": float(v) for k, v in term.breakdown.items()})
                term = term.value
            breakdown[name] = float(term)
            total += self.weights.get(name, 0.0) * float(term)
        return RewardResult(total, breakdown)

    def __repr__(self) -> str:
        return f"CompositeReward(weights={self.weights}, parse_failure={self.parse_failure})"


def _composite(preset: RewardPreset, weights: Mapping[str, float] | None,
               parse_failure: float | None) -> CompositeReward:
    return CompositeReward(
        preset.weights if weights is None else weights,
        preset.parse_failure if parse_failure is None else parse_failure,
    )


def _sessions(ids: Iterable[Any] | None) -> list[str]:
    out = []
    for i in ids or []:
        s = normalize_session_id(i)
        if s is not None:
            out.append(s)
    return out


def memory_t1_reward(
    parse: Any,
    gold_answer: Any,
    *,
    gold_sessions: Sequence[Any] | None = None,
    sessions: Any = None,
    question: str = "",
    time_range: Any = None,
    task: Any = None,
    metric: str | None = None,
    category_id: Any = None,
    weights: Mapping[str, float] | None = None,
    parse_failure: float | None = None,
    unknown_defaults: Sequence[str] | None = None,
    open_range_days: float = 30.0,
    preset: RewardPreset | None = None,
) -> RewardResult:
    """Memory-T1's reward R = 0.6 R_acc + 0.2 R_ground + 0.2 R_temporal (-1 if the JSON did not parse).

    R_acc: `accuracy(answer, gold, metric)` ("timedial" task accuracy by default; "locomo_f1" for LoCoMo).
    R_ground: `set_match` of selected vs gold session ids (ids normalized to "session_<n>"); left out when
    `gold_sessions` is None. R_temporal: `temporal_consistency`; left out when `sessions` is None.
    """
    preset = preset or modes.MEMORY_T1.reward
    comp = _composite(preset, weights, parse_failure)
    if not getattr(parse, "ok", False):
        return comp({}, ok=False)
    selected = _sessions(getattr(parse, "selected_ids", None))
    terms: dict[str, float | RewardResult | None] = {
        "accuracy": accuracy(
            getattr(parse, "answer", None), gold_answer, metric or preset.metric or "timedial",
            category_id=category_id, task=task,
        ),
        "evidence": set_match(selected, _sessions(gold_sessions)) if gold_sessions is not None else None,
        "temporal": (
            temporal_consistency(
                selected, sessions, question, time_range,
                unknown_defaults=unknown_defaults, open_range_days=open_range_days,
            )
            if sessions is not None
            else None
        ),
    }
    return comp(terms)


def _answer_terms(answer: Any, selected_ids: Sequence[Any], gold_answer: Any, metric: str, category_id: Any,
                  gold_ids: Sequence[Any] | None) -> dict[str, float | RewardResult | None]:
    """Accuracy of an answer, plus the F1 of the selected ids when gold ids are known (else not applicable)."""
    return {
        "accuracy": accuracy(answer, gold_answer, metric, category_id=category_id),
        "evidence": id_prf(selected_ids, gold_ids)["f1"] if gold_ids is not None else None,
    }


def memory_r1_answer_reward(
    parse: Any,
    gold_answer: Any,
    *,
    metric: str | None = None,
    category_id: Any = None,
    gold_ids: Sequence[Any] | None = None,
    weights: Mapping[str, float] | None = None,
    parse_failure: float | None = None,
    preset: RewardPreset | None = None,
) -> RewardResult:
    """Memory-R1's answer-agent reward: accuracy of the text after `**Answer:**` (EM by default).

    With an "evidence" weight and `gold_ids`, the F1 of the selected memory ids is added (ours; Memory-R1
    rewards the outcome only).
    """
    preset = preset or modes.MEMORY_R1.reward
    comp = _composite(preset, weights, parse_failure)
    if not getattr(parse, "ok", False):
        return comp({}, ok=False)
    return comp(_answer_terms(getattr(parse, "answer", None), getattr(parse, "selected_ids", []) or [], gold_answer,
                              metric or preset.metric or "em", category_id, gold_ids))


def context_picker_reward(
    parse: Any,
    minimal: Sequence[Any] | None,
    *,
    margin: int = 2,
    redundancy_coef: float = 0.1,
    candidates: Sequence[Any] | None = None,
    weights: Mapping[str, float] | None = None,
    parse_failure: float | None = None,
    preset: RewardPreset | None = None,
) -> RewardResult:
    """Context-Picker's reward over a parsed picker output: `picker_coverage_reward` of the selected ids.

    Duplicate or unknown ids are a format failure (`parse_failure`, -1), as the paper's format penalty.
    Returns value 0 with an empty breakdown part when `minimal` is None (no mined set: nothing to score).
    """
    comp = _composite(preset or modes.PICKER.reward, weights, parse_failure)
    if not getattr(parse, "ok", False):
        return comp({}, ok=False)
    if minimal is None:
        return comp({"coverage": None})
    cov = picker_coverage_reward(
        getattr(parse, "selected_ids", []) or [], minimal, margin,
        redundancy_coef=redundancy_coef, candidates=candidates, invalid_penalty=comp.parse_failure,
    )
    if cov.breakdown.get("valid") == 0.0:
        return RewardResult(comp.parse_failure, {"format": comp.parse_failure, **cov.breakdown})
    return comp({"coverage": cov})


def select_answer_reward(
    parse: Any,
    gold_answer: Any,
    candidate_ids: Sequence[Any],
    candidate_answers: Sequence[Any],
    *,
    metric: str | None = None,
    category_id: Any = None,
    gold_ids: Sequence[Any] | None = None,
    weights: Mapping[str, float] | None = None,
    parse_failure: float | None = None,
    preset: RewardPreset | None = None,
) -> RewardResult:
    """A picker with a frozen reader: the reader's answer from the first selected candidate, scored against the gold.

    `candidate_answers[i]` is what the frozen reader answers from candidate `candidate_ids[i]` (precomputed
    when the row is built, so scoring is a lookup). An id that was not offered is a format failure. With an
    "evidence" weight and `gold_ids`, the F1 of the selected ids is added.
    """
    preset = preset or modes.SELECT.reward
    comp = _composite(preset, weights, parse_failure)
    ids = [str(i) for i in candidate_ids]
    chosen = list(getattr(parse, "selected_ids", []) or [])
    if not getattr(parse, "ok", False) or not chosen or str(chosen[0]) not in ids:
        return comp({}, ok=False)
    answer = candidate_answers[ids.index(str(chosen[0]))]
    return comp(_answer_terms(answer, chosen, gold_answer, metric or preset.metric or "locomo_f1",
                              category_id, gold_ids))


def plain_answer_reward(
    parse: Any,
    gold_answer: Any,
    *,
    metric: str | None = None,
    category_id: Any = None,
    task: Any = None,
    weights: Mapping[str, float] | None = None,
    parse_failure: float | None = None,
    preset: RewardPreset | str | None = None,
) -> RewardResult:
    """Accuracy of the parsed answer, with the preset of an answer mode (a `RewardPreset` or a mode's name;
    default: the whole completion, EM)."""
    preset = modes.get(preset).reward if isinstance(preset, str) else (preset or modes.PLAIN.reward)
    comp = _composite(preset, weights, parse_failure)
    if not getattr(parse, "ok", False):
        return comp({}, ok=False)
    return comp({
        "accuracy": accuracy(
            getattr(parse, "answer", None), gold_answer, metric or preset.metric or "em",
            category_id=category_id, task=task,
        )
    })
