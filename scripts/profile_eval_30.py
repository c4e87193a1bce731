"""`python scripts/profile_eval_30.py`: where a 30+30 eval batch spends its time (torch.profiler, bfloat16 + shared prefix, 8 questions)."""
import time
from pathlib import Path

from torch.profiler import ProfilerActivity, profile

from memrl.bench.cpu_speed import _split_dir
from memrl.data.loaders import load_conversations
from memrl.eval import EvalConfig, evaluate

convs = load_conversations(_split_dir(Path("runs/bench_speed_work")) / "validation.jsonl")
cfg = EvalConfig(benchmark="locomo", answer_mode="short", candidates="memories", top_k_per_speaker=30, max_new_tokens=16,
                 batch_size=8, max_questions=2, skip_categories=["5"], bootstrap_samples=0, progress=False,
                 metrics=["locomo_f1"], default_manager="add_only")
evaluate(convs, "transformers:smollm2-135m-instruct", config=cfg)
import dataclasses

cfg = dataclasses.replace(cfg, max_questions=8)
with profile(activities=[ProfilerActivity.CPU]) as prof:
    t = time.perf_counter(); evaluate(convs, "transformers:smollm2-135m-instruct", config=cfg); dt = time.perf_counter() - t
print(f"{dt:.1f} s for 8 questions")
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=18))
