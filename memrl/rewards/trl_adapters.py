"""Reward functions with TRL's signature: `f(prompts, completions, **columns) -> list[float | None]`.

TRL (GRPOTrainer, 1.16) calls each reward function with the batch's prompts and completions plus every
dataset column as a keyword (one value per completion), and `trainer_state`, `log_extra`, `log_metric`,
`completion_ids`. It logs `rewards/<__name__>/mean`, and reads None as "this function has no reward for
that sample". Completions are strings, or (conversational datasets) lists of messages whose assistant
contents we join. Prompts are never parsed: dialogue that looks like an op or an answer is data.

Columns read, per mode (missing optional columns just turn the term off for that row):
- all modes: `answer` (gold; rows without it get None), `category_id` (LoCoMo per-category F1), `task` or
  `ability` (TIME-Dial task type).
- "memory_t1": `evidence_session_ids` (or `gold_sessions` / `gold_selected_sessions`) for R_ground;
  `sessions` (or `all_sessions`: session dicts with times and events, or an id -> time mapping, or
  `session_times`) for R_temporal; `time_range` (or `question_time_range`); `question`.
- "memory_r1": `evidence_ids` (or `gold_ids`): prompt-local ids of the gold memories, used only when the
  weights include "evidence".
- "picker": `minimal_evidence` (falls back to `evidence_ids` / `gold_ids`; rows with neither get None),
  `candidate_ids` (ids shown in the prompt; naming another id is a format failure). No `answer` needed.
- "plain": `answer`.

`AnswerReward.margin` may be changed between steps (Context-Picker's stage switch); the object is picklable.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from memrl.protocol.parsing import parse_answer_output
from memrl.rewards.base import RewardResult
from memrl.rewards.composite import (
    PRESETS,
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


class AnswerReward:
    """One TRL reward function for an answer / picker mode (see `make_answer_reward`)."""

    def __init__(
        self,
        mode: str,
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
        if mode not in PRESETS:
            raise ValueError(f"unknown answer mode {mode!r}; choose one of {sorted(PRESETS)}")
        self.mode = mode
        self.weights = dict(weights) if weights is not None else None
        self.metric = metric
        self.term = term
        self.margin = margin
        self.redundancy_coef = redundancy_coef
        self.parse_failure = parse_failure
        self.unknown_defaults = tuple(unknown_defaults) if unknown_defaults is not None else None
        self.open_range_days = open_range_days
        self.__name__ = name or (f"{mode}_{term}" if term else f"{mode}_reward")

    # -- one sample --------------------------------------------------------------------------------------
    def score(self, completion: Any, row: Mapping[str, Any]) -> RewardResult | None:
        """The full reward with breakdown for one completion and its dataset row; None if it does not apply."""

        parse = parse_answer_output(completion_text(completion), self.mode)
        common = {"weights": self.weights, "parse_failure": self.parse_failure}
        category_id = row.get("category_id")
        task = _first(row, "task", "ability")
        if self.mode == "picker":
            minimal = _first(row, "minimal_evidence", "evidence_ids", "gold_ids")
            if minimal is None:
                return None
            return context_picker_reward(
                parse, list(minimal), margin=self.margin, redundancy_coef=self.redundancy_coef,
                candidates=row.get("candidate_ids"), **common,
            )
        gold = _first(row, "answer", "gold_answer")
        if gold is None:
            return None
        if self.mode == "memory_t1":
            return memory_t1_reward(
                parse, gold,
                gold_sessions=_first(row, "evidence_session_ids", "gold_sessions", "gold_selected_sessions"),
                sessions=_first(row, "sessions", "all_sessions", "session_times"),
                question=str(row.get("question") or ""),
                time_range=_first(row, "time_range", "question_time_range"),
                task=task, metric=self.metric, category_id=category_id,
                unknown_defaults=self.unknown_defaults, open_range_days=self.open_range_days, **common,
            )
        if self.mode == "select":
            return select_answer_reward(
                parse, gold, row.get("candidate_ids") or [], row.get("candidate_answers") or [],
                metric=self.metric, category_id=category_id,
                gold_ids=_first(row, "evidence_ids", "gold_ids"), **common,
            )
        if self.mode == "memory_r1":
            return memory_r1_answer_reward(
                parse, gold, metric=self.metric, category_id=category_id,
                gold_ids=_first(row, "evidence_ids", "gold_ids"), **common,
            )
        return plain_answer_reward(parse, gold, metric=self.metric, category_id=category_id, task=task,
                                   preset="short" if self.mode == "short" else "plain", **common)

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
        return (f"AnswerReward(mode={self.mode!r}, weights={self.weights}, metric={self.metric!r}, "
                f"term={self.term!r}, margin={self.margin})")


def make_answer_reward(
    mode: str, weights: Mapping[str, float] | None = None, metric: str | None = None, **options: Any
) -> AnswerReward:
    """A TRL reward function for an answer/picker mode: "memory_t1", "memory_r1", "picker", "select", "plain" or
    "short".

    weights default to the mode's preset (`memrl.rewards.composite.PRESETS`); metric to the preset's
    ("timedial" for memory_t1, "em" for memory_r1 / plain). options: `term` (return one breakdown term
    unweighted, e.g. "accuracy", "evidence", "temporal", "coverage", "format", named "<mode>_<term>"),
    `margin`, `redundancy_coef`, `parse_failure`, `unknown_defaults`, `open_range_days`, `name`.
    """
    return AnswerReward(mode, weights, metric, **options)

