#!/usr/bin/env bash
# bfloat16 vs float32 quality guard: all 199 conv-26 questions, short mode, 5+5 memories, greedy.
set -e
cd "$(dirname "$0")/.."
mkdir -p runs/quality_guard
for dt in float32 bfloat16; do
  nice -n 5 .venv/bin/memrl eval --config configs/eval/locomo.yaml data=data/locomo/conv-26.json policy=transformers:smollm2-135m-instruct \
    answer_mode=short top_k_per_speaker=5 max_new_tokens=16 skip_categories=[] metrics=[locomo_f1] dtype=$dt \
    out=runs/quality_guard/$dt progress=false > runs/quality_guard/$dt.log 2>&1
done
.venv/bin/memrl eval compare runs/quality_guard/float32 runs/quality_guard/bfloat16 --metric locomo_f1 > runs/quality_guard/compare.md 2>&1
