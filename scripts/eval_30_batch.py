"""`python scripts/eval_30_batch.py [BATCH ...]`: eval seconds per question at 30+30 memories for each batch size, one
after another in one process (bf16 + shared prefix, 8 conv-26 validation questions, greedy <= 16 tokens).

Why batch 1 can win on a CPU: a lone prompt has no padding, so its prefill runs SDPA with is_causal (PyTorch's CPU
flash kernel skips the blocks above the diagonal); a padded batch passes an explicit mask and every block is
computed. At 30+30 (~2,800-token prompts) attention is most of the time (docs/PERFORMANCE.md)."""
import dataclasses
import sys
import time
from pathlib import Path

from memrl.bench.cpu_speed import _split_dir
from memrl.data.loaders import load_conversations
from memrl.eval import EvalConfig, evaluate

batches = [int(b) for b in sys.argv[1:]] or [8, 1]
convs = load_conversations(_split_dir(Path("runs/bench_speed_work")) / "validation.jsonl")
cfg = EvalConfig(benchmark="locomo", answer_mode="short", candidates="memories", top_k_per_speaker=30,
                 max_new_tokens=16, batch_size=8, max_questions=2, skip_categories=["5"], bootstrap_samples=0,
                 progress=False, metrics=["locomo_f1"], default_manager="add_only")
evaluate(convs, "transformers:smollm2-135m-instruct", config=cfg)  # warm-up: model load, caches
for b in batches:
    c = dataclasses.replace(cfg, max_questions=8, batch_size=b)
    t = time.perf_counter()
    res = evaluate(convs, "transformers:smollm2-135m-instruct", config=c)
    dt = time.perf_counter() - t
    print(f"batch {b}: {dt / res['counts']['questions']:.2f} s per question, F1 {res['metrics']['locomo_f1']['overall']:.3f}",
          flush=True)
