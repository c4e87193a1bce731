"""Reward library: pure functions over strings, id lists and ISO times.

Nothing here imports torch or transformers, and nltk (whose `import` pulls in scipy/sklearn, ~4 s on
the dev box) is imported lazily on the first stemmed-F1 / BLEU call, so `import memrl.rewards` stays cheap
for benchmarks and Ray workers.

Conventions (every docstring states its range):
- Scalar metrics (EM, F1, BLEU-1, set match, coverage, R_s) return a `float`.
- Rewards assembled from several parts return `RewardResult(value, breakdown)`; the breakdown holds the
  parts so that environments can put it in `info` and TRL adapters can log it.

Modules: `accuracy` (EM, LoCoMo's official F1, A-Mem F1, BLEU-1, TIME-Dial task accuracy, judge hook),
`evidence` (Memory-T1 set match, Context-Picker coverage, id P/R/F1), `temporal` (Memory-T1 R_s / R_f,
write-side temporal term, date parsing), `format` (format penalty, length/redundancy/invalid-op costs,
Mem-alpha compression), `composite` (weighted sums and one reward function per reward kind; each answer mode's
default preset lives with the mode, `memrl.protocol.modes`), `trl_adapters` (TRL reward-function signature).
"""

from __future__ import annotations

from memrl.rewards.accuracy import (
    METRICS,
    accuracy,
    amem_f1,
    bleu1,
    exact_match,
    judge_scores,
    locomo_f1,
    normalize_answer,
    timedial_accuracy,
    token_f1,
)
from memrl.rewards.base import RewardResult
from memrl.rewards.composite import (
    CompositeReward,
    RewardPreset,
    context_picker_reward,
    memory_r1_answer_reward,
    memory_t1_reward,
    plain_answer_reward,
    select_answer_reward,
)
from memrl.rewards.evidence import id_prf, picker_coverage_reward, set_match
from memrl.rewards.format import (
    compression_reward,
    format_reward,
    invalid_op_penalty,
    length_cost,
    redundancy_cost,
)
from memrl.rewards.temporal import (
    MEMORY_T1_UNKNOWN_DEFAULTS,
    event_fidelity,
    interval_relation,
    parse_date_span,
    session_proximity,
    temporal_consistency,
    text_match_score,
    write_temporal_reward,
)

__all__ = [
    "MEMORY_T1_UNKNOWN_DEFAULTS", "METRICS", "CompositeReward", "RewardPreset", "RewardResult",
    "accuracy", "amem_f1", "bleu1", "compression_reward", "context_picker_reward", "event_fidelity",
    "exact_match", "format_reward", "id_prf", "interval_relation", "invalid_op_penalty", "judge_scores",
    "length_cost", "locomo_f1", "memory_r1_answer_reward", "memory_t1_reward", "normalize_answer",
    "parse_date_span", "picker_coverage_reward", "plain_answer_reward", "redundancy_cost",
    "select_answer_reward", "session_proximity", "set_match", "temporal_consistency", "text_match_score", "timedial_accuracy",
    "token_f1", "write_temporal_reward",
]
