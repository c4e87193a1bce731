"""`python scripts/eval_batch_size.py [POLICY]`: conv-26 validation (61 questions, short mode, 3+3 memories, greedy
<= 16 tokens) evaluated at batch sizes 16, 64, 32, 16, 64 in one process after a warm-up: seconds and F1 of each.
Default policy: the full preset's warm start. docs/PERFORMANCE.md (the preset's evaluations)."""
import dataclasses
import sys
import time
from pathlib import Path

import torch

from memrl.data.loaders import load_conversations
from memrl.eval import EvalConfig, evaluate

torch.set_num_threads(2)
convs = load_conversations(Path("runs/data/conv26_split/validation.jsonl"))
policy = sys.argv[1] if len(sys.argv) > 1 else "runs/demo_full_warm/warm_start/sft/final_model"
if len(sys.argv) > 2 or not Path(policy).is_dir():
    print(f"usage: python scripts/eval_batch_size.py [POLICY checkpoint dir]; got {sys.argv[1:]} (no dir {policy})",
          file=sys.stderr)
    sys.exit(2)
cfg = EvalConfig(benchmark="locomo", answer_mode="short", candidates="memories", top_k_per_speaker=3,
                 max_new_tokens=16, batch_size=16, max_questions=0, skip_categories=["adversarial", "5"],
                 bootstrap_samples=0, progress=False, torch_threads=2, metrics=["locomo_f1"], default_manager="add_only")
evaluate(convs, policy, config=dataclasses.replace(cfg, max_questions=4))
for bs in (16, 64, 32, 16, 64):
    t = time.perf_counter(); r = evaluate(convs, policy, config=dataclasses.replace(cfg, batch_size=bs))
    print(bs, round(time.perf_counter() - t, 1), r["counts"]["questions"], round(r["metrics"]["locomo_f1"]["overall"], 4), flush=True)
