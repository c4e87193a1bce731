"""Evaluation figures: questions per second of `memrl eval` with the BM25 answerer."""

from __future__ import annotations

from memrl.bench.figures import Context, Figure
from memrl.eval.engine import benchmark_eval_throughput


# ---- evaluation (issue 7) ------------------------------------------------------------------------------------
def bench_eval(ctx: Context) -> list[Figure]:

    r = benchmark_eval_throughput(ctx.conv26(), policy="bm25", copies=ctx.sizes.eval_copies)
    return [Figure("eval.bm25_questions_per_s", r["questions_per_s"], "questions/s",
                   note=f"{r['questions']} questions ({r['conversations']} x conv-26{'' if r['conversations'] >= 10 else '; locomo10 has 1,986'}), "
                        f"bank built by the add-only manager, top-30 per speaker, all default metrics scored, local "
                        f"executor, {r['seconds']} s")]
