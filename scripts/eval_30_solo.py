"""`python scripts/eval_30_solo.py`: eval seconds per question at 30+30 memories with long prompts batched together
(padding mask) and each in a batch of its own (memrl.policies.backends.CPU_SOLO_PROMPT_TOKENS: no mask, SDPA's causal
kernel), one after another in one process: bf16 + shared prefix, 8 conv-26 validation questions, greedy <= 16
tokens, batch_size 8. Why: docs/PERFORMANCE.md "30+30 eval"."""
import dataclasses
import time
from pathlib import Path

from memrl.bench.cpu_speed import _split_dir
from memrl.data.loaders import load_conversations
from memrl.eval import EvalConfig, evaluate
from memrl.policies import backends

convs = load_conversations(_split_dir(Path("runs/bench_speed_work")) / "validation.jsonl")
cfg = EvalConfig(benchmark="locomo", answer_mode="short", candidates="memories", top_k_per_speaker=30,
                 max_new_tokens=16, batch_size=8, max_questions=2, skip_categories=["5"], bootstrap_samples=0,
                 progress=False, metrics=["locomo_f1"], default_manager="add_only")
evaluate(convs, "transformers:smollm2-135m-instruct", config=cfg)  # warm-up: model load, caches
solo = backends.CPU_SOLO_PROMPT_TOKENS
for name, tokens in (("batched (padding mask)", 0), (f"solo >= {solo} tokens", solo)):
    backends.CPU_SOLO_PROMPT_TOKENS = tokens
    t = time.perf_counter()
    res = evaluate(convs, "transformers:smollm2-135m-instruct", config=dataclasses.replace(cfg, max_questions=8))
    dt = time.perf_counter() - t
    print(f"{name}: {dt / res['counts']['questions']:.2f} s per question, F1 {res['metrics']['locomo_f1']['overall']:.3f}",
          flush=True)
