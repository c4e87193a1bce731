"""Evaluation figures: questions per second of `memrl eval` with the BM25 answerer."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from memrl.bench.figures import Context, Figure
from memrl.data.loaders.locomo import load_locomo
from memrl.data.schema import Conversation
from memrl.eval.config import DEFAULT_METRICS, EvalConfig
from memrl.eval.engine import evaluate


def benchmark_eval_throughput(conversation: Conversation | str | Path, policy: str = "bm25", copies: int = 10,
                              metrics: list[str] | None = None) -> dict[str, Any]:
    """Questions/s of the evaluation pipeline (bank, retrieval, answering, scoring) on `copies` copies of a
    conversation (10 x LoCoMo conv-26 = 1,990 questions, the size of locomo10), local executor, no files."""
    if not isinstance(conversation, Conversation):
        conversation = load_locomo(conversation)[0]
    base = conversation.to_dict()
    convs = []
    for k in range(copies):
        d = json.loads(json.dumps(base))
        d["conversation_id"] = f"{conversation.conversation_id}#{k}"
        convs.append(Conversation.from_dict(d))
    cfg = EvalConfig(benchmark="locomo", progress=False, bootstrap_samples=200,
                     metrics=list(metrics or DEFAULT_METRICS))
    evaluate(convs[:1], policy, config=dataclasses.replace(cfg, max_questions=2))  # warm-up: imports, stemmer
    t0 = time.perf_counter()
    res = evaluate(convs, policy, config=cfg)
    seconds = time.perf_counter() - t0
    n = res["counts"]["questions"]
    return {"policy": policy, "conversations": copies, "questions": n, "seconds": round(seconds, 3),
            "questions_per_s": round(n / seconds, 1), "executor": "local",
            "bank": res["protocol"]["memory_bank"], "metrics": list(cfg.metrics)}


# ---- evaluation ---------------------------------------------------------------------------------------------------
def bench_eval(ctx: Context) -> list[Figure]:

    r = benchmark_eval_throughput(ctx.conv26(), policy="bm25", copies=ctx.sizes.eval_copies)
    return [Figure("eval.bm25_questions_per_s", r["questions_per_s"], "questions/s",
                   note=f"{r['questions']} questions ({r['conversations']} x conv-26{'' if r['conversations'] >= 10 else '; locomo10 has 1,986'}), "
                        f"bank built by the add-only manager, top-30 per speaker, all default metrics scored, local "
                        f"executor, {r['seconds']} s")]
