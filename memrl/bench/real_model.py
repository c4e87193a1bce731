"""`memrl bench --only real_model`: figures for the real pretrained model (SmolLM2-135M-Instruct, prepared by
`memrl models prepare`). Opt-in (not in the default groups): it loads a 135M model and generates on CPU.

- real_model.generation_tokens_per_s: greedy transformers generation on the real model, batched (length-sorted
  batches) vs one prompt at a time, same prompts, same run; ratio = the batching speedup.
- real_model.eval_questions_per_s: `memrl eval` answer throughput on LoCoMo conv-26 (Memory-R1 answer prompt,
  5+5 memories, <= 32 new tokens), with the projected time for the 1,307 questions of Memory-R1's test split
  (target <= 15 min at 30+30: the note says what the measured budget costs).
- real_model.grpo_step_ratio: one GRPO step with memrl's environment rewards (manager snapshot rows) vs plain TRL
  GRPO on this model with LoRA (r 16, q/k/v/o), same prompts and batch, two fresh trainers alternating step by
  step (memrl.bench.rl.grpo_step_ratio); target <= 1.10x.
- real_model.peak_rss_mb: the process's peak resident memory after the above.
"""

from __future__ import annotations

import resource
import time
from typing import Any

from memrl.bench.cpu_speed import speed_figures
from memrl.bench.figures import CONV26, Figure, met, rounded
from memrl.bench.generation import benchmark_generation
from memrl.bench.rl import grpo_step_ratio
from memrl.data.loaders import load_locomo
from memrl.eval import EvalConfig, evaluate
from memrl.models import resolve_model

NAME = "smollm2-135m-instruct"
TEST_SPLIT_QUESTIONS = 1307


def bench_real_model(ctx: Any) -> list:
    model_dir = resolve_model(NAME, "bench real_model")  # one-line error if not prepared
    # First, while this process holds no model: the float32 TRL GRPO child alone needs ~14 GB on this machine.
    figs = speed_figures(ctx)  # float32 -> bfloat16 -> bfloat16 + shared prefix (memrl/bench/cpu_speed.py)
    quick = bool(getattr(ctx, "quick", False))
    n_prompts, n_tok = (4, 8) if quick else (16, 24)
    r = benchmark_generation(model_dir, num_prompts=n_prompts, max_tokens=n_tok, batch_size=8,
                             num_threads=ctx.threads)
    figs += [Figure("real_model.generation_tokens_per_s", r["batched_tokens_per_s"], "tokens/s",
                   reference=f"one prompt at a time, same run: {r['sequential_tokens_per_s']} tokens/s",
                   ratio=r["speedup"],
                   note=f"{NAME}, greedy, {r['num_prompts']} compact-manager prompts x {r['max_tokens']} new tokens, "
                        f"batch {r['batch_size']}, {r['torch_threads']} torch thread(s), {r['device']}")]
    conv = load_locomo(CONV26)[0]
    n_q = 4 if quick else 16
    cfg = EvalConfig(benchmark="locomo", answer_mode="memory_r1", top_k_per_speaker=5, max_new_tokens=32,
                     batch_size=8, max_questions=n_q, skip_categories=["5"], bootstrap_samples=0, progress=False,
                     torch_threads=ctx.threads or 0, metrics=["locomo_f1"])
    t0 = time.perf_counter()
    res = evaluate([conv], f"transformers:{NAME}", config=cfg)
    dt = time.perf_counter() - t0
    qps = res["counts"]["questions"] / dt
    proj_min = TEST_SPLIT_QUESTIONS / qps / 60
    figs.append(Figure("real_model.eval_questions_per_s", round(qps, 4), "questions/s",
                       target="1,307 questions in <= 15 min at 30+30", met=None,
                       note=f"memrl eval, {NAME} as memory_r1 answer agent on conv-26, 5+5 memories (add_only bank), "
                            f"<= 32 new tokens, {n_q} questions incl. model load, {dt:.1f} s; projected "
                            f"{proj_min:.0f} min for 1,307 questions at 5+5 (30+30 prompts are ~6x longer)"))
    figs.append(_grpo_figure(ctx, model_dir, quick))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figs.append(Figure("real_model.peak_rss_mb", round(rss_mb, 1), "MB",
                       note="peak RSS of the bench process after the real-model figures (model loaded twice)"))
    return figs


def _grpo_figure(ctx: Any, model_dir: str, quick: bool) -> Figure:
    import dataclasses
    import statistics

    from peft import LoraConfig  # deferred: imports torch

    # Real-model steps take tens of seconds on CPU: one round, 1 warm-up + 2 (quick: 1) timed steps per trainer.
    sizes = dataclasses.replace(ctx.sizes, rl_rounds=1, rl_warmup=1, rl_steps=1 if quick else 2, rl_completions=8,
                                rl_generations=4, rl_completion_tokens=16)
    small = dataclasses.replace(ctx, sizes=sizes, shared=ctx.shared)
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                      task_type="CAUSAL_LM")
    r = grpo_step_ratio(small, model_dir=model_dir, lora=lora)
    p_med, m_med = statistics.median(r["plain"]["wall"]), statistics.median(r["memrl"]["wall"])
    lo, hi = r["ci"]
    return Figure("real_model.grpo_seconds_per_step", rounded(m_med), "s",
                  reference=f"plain TRL GRPO on the same model, LoRA, prompts and batch, same run: {p_med:.2f} s/step",
                  ratio=rounded(r["ratio"]), target="<= 1.10x plain TRL GRPO", met=met(r["ratio"], "<=", 1.10),
                  note=f"{NAME}, LoRA r 16 (q/k/v/o), 8 completions per step (2 prompts x 4), <= 16 new tokens forced "
                       f"to the cap, learning rate 0, manager snapshot rows of synthetic conversations; median of "
                       f"{len(r['pairs'])} per-pair ratios, 95% CI [{lo:.3f}, {hi:.3f}]")


__all__ = ["bench_real_model"]
