"""Reward functions with TRL's signature: `f(prompts, completions, **columns) -> list[float | None]`.

TRL (GRPOTrainer, 1.16) calls each reward function with the batch's prompts and completions plus every
dataset column as a keyword (one value per completion), and `trainer_state`, `log_extra`, `log_metric`,
`completion_ids`. It logs `rewards/<__name__>/mean`, and reads None as "this function has no reward for
that sample". Completions are strings, or (conversational datasets) lists of messages whose assistant
contents we join. Prompts are never parsed: dialogue that looks like an op or an answer is data.

Columns read, per reward kind (the answer mode's `RewardPreset.kind`; missing optional columns just turn the
term off for that row):
- every kind but "coverage": `answer` (gold; rows without it get None), `category_id` (LoCoMo per-category
  F1), `task` or `ability` (TIME-Dial task type).
- "temporal" (memory_t1): `evidence_session_ids` (or `gold_sessions` / `gold_selected_sessions`) for
  R_ground; `sessions` (or `all_sessions`: session dicts with times and events, or an id -> time mapping, or
  `session_times`) for R_temporal; `time_range` (or `question_time_range`); `question`.
- "answer" (memory_r1, compact) and "reader" (select): `evidence_ids` (or `gold_ids`): prompt-local ids of
  the gold memories, used only when the weights include "evidence"; "reader" also `candidate_ids` and
  `candidate_answers` (what the frozen reader answers from each candidate).
- "coverage" (picker): `minimal_evidence` (falls back to `evidence_ids` / `gold_ids`; rows with neither get
  None), `candidate_ids` (ids shown in the prompt; naming another id is a format failure). No `answer` needed.
- "accuracy" (short, plain): `answer`.

`AnswerReward.margin` may be changed between steps (Context-Picker's stage switch); the object is picklable.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from memrl.protocol import modes
from memrl.protocol.modes import AnswerMode
from memrl.rewards.base import RewardResult
from memrl.rewards.composite import (
    context_picker_reward,
    memory_r1_answer_reward,
    memory_t1_reward,
    plain_answer_reward,
    select_answer_reward,
)

# Keywords TRL passes that are not dataset columns.
_NOT_COLUMNS = frozenset({"trainer_state", "log_extra", "log_metric", "environments", "completion_ids"})


def completion_text(completion: Any) -> str:
    """The text of one completion: a string, or the joined contents of the assistant messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        completion = [completion]
    if isinstance(completion, Sequence):
        parts = []
        for msg in completion:
            if not isinstance(msg, Mapping) or msg.get("role", "assistant") != "assistant":
                continue
            content = msg.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, Sequence):  # multimodal parts: [{"type": "text", "text": ...}]
                parts.extend(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
        return "\n".join(parts)
    return "" if completion is None else str(completion)


def _rows(n: int, columns: Mapping[str, Any]) -> list[dict[str, Any]]:
    cols = {
        k: v for k, v in columns.items()
        if k not in _NOT_COLUMNS and isinstance(v, (list, tuple)) and len(v) == n
    }
    return [{k: v[i] for k, v in cols.items()} for i in range(n)]


def _first(row: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if row.get(name) is not None:
            return row[name]
    return None


# ---- one scoring function per reward kind (RewardPreset.kind) ------------------------------------------------
def _coverage(reward: AnswerReward, parse: Any, row: Mapping[str, Any], common: dict[str, Any]) -> RewardResult | None:
    minimal = _first(row, "minimal_evidence", "evidence_ids", "gold_ids")
    if minimal is None:
        return None
    return context_picker_reward(
        parse, list(minimal), margin=reward.margin, redundancy_coef=reward.redundancy_coef,
        candidates=row.get("candidate_ids"), **common,
    )


def _temporal(reward: AnswerReward, parse: Any, row: Mapping[str, Any], common: dict[str, Any]) -> RewardResult | None:
    gold = _first(row, "answer", "gold_answer")
    if gold is None:
        return None
    return memory_t1_reward(
        parse, gold,
        gold_sessions=_first(row, "evidence_session_ids", "gold_sessions", "gold_selected_sessions"),
        sessions=_first(row, "sessions", "all_sessions", "session_times"),
        question=str(row.get("question") or ""),
        time_range=_first(row, "time_range", "question_time_range"),
        task=_first(row, "task", "ability"), metric=reward.metric, category_id=row.get("category_id"),
        unknown_defaults=reward.unknown_defaults, open_range_days=reward.open_range_days, **common,
    )


def _reader(reward: AnswerReward, parse: Any, row: Mapping[str, Any], common: dict[str, Any]) -> RewardResult | None:
    gold = _first(row, "answer", "gold_answer")
    if gold is None:
        return None
    return select_answer_reward(
        parse, gold, row.get("candidate_ids") or [], row.get("candidate_answers") or [],
        metric=reward.metric, category_id=row.get("category_id"),
        gold_ids=_first(row, "evidence_ids", "gold_ids"), **common,
    )


def _answer(reward: AnswerReward, parse: Any, row: Mapping[str, Any], common: dict[str, Any]) -> RewardResult | None:
    gold = _first(row, "answer", "gold_answer")
    if gold is None:
        return None
    return memory_r1_answer_reward(
        parse, gold, metric=reward.metric, category_id=row.get("category_id"),
        gold_ids=_first(row, "evidence_ids", "gold_ids"), **common,
    )


def _accuracy(reward: AnswerReward, parse: Any, row: Mapping[str, Any], common: dict[str, Any]) -> RewardResult | None:
    gold = _first(row, "answer", "gold_answer")
    if gold is None:
        return None
    return plain_answer_reward(parse, gold, metric=reward.metric, category_id=row.get("category_id"),
                               task=_first(row, "task", "ability"), **common)


REWARD_KINDS = {"coverage": _coverage, "temporal": _temporal, "reader": _reader, "answer": _answer,
                "accuracy": _accuracy}


class AnswerReward:
    """One TRL reward function for an answer mode (see `make_answer_reward`): the mode's parser, then the reward
    function of its preset's kind, with the preset's weights / metric unless given."""

    def __init__(
        self,
        answer_mode: str | AnswerMode,
        weights: Mapping[str, float] | None = None,
        metric: str | None = None,
        *,
        term: str | None = None,
        margin: int = 2,
        redundancy_coef: float = 0.1,
        parse_failure: float | None = None,
        unknown_defaults: Sequence[str] | None = None,
        open_range_days: float = 30.0,
        name: str | None = None,
    ):
        mode = modes.get(answer_mode)
        if mode.reward.kind not in REWARD_KINDS:
            raise ValueError(f"answer mode {mode.name!r}: reward kind {mode.reward.kind!r} is not one of "
                             f"{sorted(REWARD_KINDS)}")
        self.answer_mode = mode.name
        self._mode = mode  # kept, so a reward built from an AnswerMode object needs no registration
        self.weights = dict(weights) if weights is not None else None
        self.metric = metric
        self.term = term
        self.margin = margin
        self.redundancy_coef = redundancy_coef
        self.parse_failure = parse_failure
        self.unknown_defaults = tuple(unknown_defaults) if unknown_defaults is not None else None
        self.open_range_days = open_range_days
        base = mode.reward_name
        self.__name__ = name or (f"{base}_{term}" if term else f"{base}_reward")

    # -- one sample --------------------------------------------------------------------------------------
    def score(self, completion: Any, row: Mapping[str, Any]) -> RewardResult | None:
        """The full reward with breakdown for one completion and its dataset row; None if it does not apply."""
        mode = self._mode
        parse = mode.parse(completion_text(completion))
        common = {"weights": self.weights, "parse_failure": self.parse_failure, "preset": mode.reward}
        return REWARD_KINDS[mode.reward.kind](self, parse, row, common)

    def _value(self, result: RewardResult | None) -> float | None:
        if result is None:
            return None
        if self.term is None:
            return float(result.value)
        v = result.breakdown.get(self.term)
        return None if v is None else float(v)

    # -- TRL entry point ---------------------------------------------------------------------------------
    def __call__(self, prompts: Sequence[Any] | None = None, completions: Sequence[Any] | None = None,
                 **columns: Any) -> list[float | None]:
        completions = list(completions or [])
        rows = _rows(len(completions), columns)
        results = [self.score(c, r) for c, r in zip(completions, rows)]
        log_metric = columns.get("log_metric")
        if self.term is None and callable(log_metric):
            sums: dict[str, list[float]] = defaultdict(list)
            for res in results:
                for k, v in (res.breakdown if res is not None else {}).items():
                    sums[k].append(v)
            for k, vs in sums.items():
                log_metric(f"{self.__name__}/{k}", sum(vs) / len(vs))
        return [self._value(r) for r in results]

    def __repr__(self) -> str:
        return (f"AnswerReward(answer_mode={self.answer_mode!r}, weights={self.weights}, metric={self.metric!r}, "
                f"term={self.term!r}, margin={self.margin})")


def make_answer_reward(
    answer_mode: str | AnswerMode, weights: Mapping[str, float] | None = None, metric: str | None = None,
    **options: Any
) -> AnswerReward:
    """A TRL reward function for an answer mode (a name in `memrl.protocol.modes`, or an `AnswerMode`).

    weights default to the mode's preset (`AnswerMode.reward`); metric to the preset's ("timedial" for
    memory_t1, "em" for memory_r1 / compact / plain, "locomo_f1" for select / short). options: `term` (return
    one breakdown term unweighted, e.g. "accuracy", "evidence", "temporal", "coverage", "format", named
    "<reward name>_<term>"), `margin`, `redundancy_coef`, `parse_failure`, `unknown_defaults`,
    `open_range_days`, `name`.
    """
    return AnswerReward(answer_mode, weights, metric, **options)

