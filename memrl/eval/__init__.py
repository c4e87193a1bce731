"""Evaluation: any policy (baseline, checkpoint, run directory), optionally behind a memory manager, on LoCoMo,
LongMemEval, TIME-Dial or synthetic data, with the protocol pinned and printed with every result.

    from memrl.eval import EvalConfig, evaluate
    results = evaluate(conversations, "bm25", manager="rule_based", config=EvalConfig(benchmark="synthetic"))

`EvalConfig` and data selection live in `config.py`, policy references / loading / the judge in `policies.py`,
`evaluate` / `run_eval` in `engine.py`, aggregation and bootstrap CIs in `metrics.py`, results.json ->
report.md / plots / `compare` in `report.py`; docs/EVALUATION.md has the protocol.
Importing this package does not import torch (models load only when a checkpoint is evaluated).
"""

from memrl.eval.config import DEFAULT_METRICS, MEMORY_R1_SPLIT, EvalConfig, load_data, select_conversations
from memrl.eval.engine import evaluate, run_eval
from memrl.eval.report import compare, load_results, summary_table, write_report

__all__ = [
    "DEFAULT_METRICS", "MEMORY_R1_SPLIT", "EvalConfig", "compare", "evaluate",
    "load_data", "load_results", "run_eval", "select_conversations", "summary_table", "write_report",
]
