"""Synthesis figures: conversations per second, one Ray worker against two."""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from typing import Any

from memrl.bench.figures import Context, Figure, met, rounded
from memrl.data_synth.config import SynthConfig
from memrl.data_synth.synth import conversation_line, make_executor_for, synthesize_conversation


# ---- the throughput benchmark -------------------------------------------------------------------------------------
def _bench_shard(task: dict[str, Any]) -> dict[str, Any]:
    """Synthesize and serialize a range of conversations without writing them (executor task)."""
    cfg = SynthConfig(**task["config"])
    t0, c0 = time.perf_counter(), time.process_time()
    nbytes = 0
    for i in range(task["start"], task["stop"]):
        nbytes += len(conversation_line(synthesize_conversation(cfg, i)))
    return {"conversations": task["stop"] - task["start"], "bytes": nbytes, "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - c0}


def benchmark_synthesis(num_conversations: int = 200, workers: int = 1, executor: str = "local",
                        sessions: int = 20, turns: int = 20, seed: int = 0) -> dict[str, Any]:
    """Conversations/s for `sessions` x `turns` conversations (synthesis + JSON serialization, no disk).

    `conversations_per_s` is wall-clock throughput; `conversations_per_cpu_s` divides by the CPU time the
    workers used, i.e. throughput per busy core, which stays meaningful on a shared machine.
    With executor="ray", the wall time includes task dispatch but not `ray.init` (the executor is created
    and warmed up with one tiny task per worker first), which is what a long run amortizes.
    """
    cfg = SynthConfig(num_conversations=num_conversations, seed=seed, sessions_per_conversation=[sessions, sessions],
                      turns_per_session=[turns, turns], executor=executor, num_workers=workers).validate()
    content = asdict(cfg)
    num_tasks = max(1, workers * 4) if executor == "ray" else 1
    size = (num_conversations + num_tasks - 1) // num_tasks
    tasks = [{"config": content, "start": a, "stop": min(num_conversations, a + size)}
             for a in range(0, num_conversations, size)]
    ex = make_executor_for(executor, workers)
    try:
        if executor == "ray":
            ex.map(_bench_shard, [{"config": content, "start": 0, "stop": 1}] * workers)  # warm the workers
        t0 = time.perf_counter()
        results = ex.map(_bench_shard, tasks)
        wall = time.perf_counter() - t0
    finally:
        if executor == "ray":
            ex.shutdown()
    n = sum(r["conversations"] for r in results)
    return {"executor": executor, "workers": workers, "conversations": n, "sessions": sessions, "turns": turns,
            "seconds": round(wall, 3), "conversations_per_s": round(n / wall, 2),
            "conversations_per_s_per_worker": round(n / wall / workers, 2),
            "conversations_per_cpu_s": round(n / sum(r["cpu_seconds"] for r in results), 2),
            "mb_per_s": round(sum(r["bytes"] for r in results) / wall / 1e6, 2)}


# ---- synthesis ----------------------------------------------------------------------------------------------------
def bench_synth(ctx: Context) -> list[Figure]:

    n = ctx.sizes.synth_single
    benchmark_synthesis(5, 1, "local")  # warm-up: imports and template caches
    r = benchmark_synthesis(n, 1, "local")
    note = (f"{r['conversations']} conversations of 20 sessions x 20 turns, one process (synthesis + JSON, no disk), "
            f"{r['seconds']} s, {r['mb_per_s']} MB/s")
    return [
        Figure("synth.conversations_per_s_1proc", r["conversations_per_s"], "conv/s", target=">= 50 conv/s per core",
               met=met(r["conversations_per_s"], ">=", 50), note=note + "; wall clock"),
        Figure("synth.conversations_per_cpu_s", r["conversations_per_cpu_s"], "conv/CPU-s",
               target=">= 50 conv/s per core", met=met(r["conversations_per_cpu_s"], ">=", 50),
               note=note + "; per CPU-second of the process, i.e. per busy core (robust to other jobs)"),
    ]


def bench_ray(ctx: Context) -> list[Figure]:

    n = ctx.sizes.synth_ray
    one = benchmark_synthesis(n, 1, "ray")
    two = benchmark_synthesis(n, 2, "ray")
    ratio = two["conversations_per_s"] / one["conversations_per_s"]
    at_size = n >= 2000
    return [Figure(
        "synth.ray_2_workers_conversations_per_s", two["conversations_per_s"], "conv/s",
        reference=f"Ray, 1 worker, same run: {one['conversations_per_s']} conv/s", ratio=rounded(ratio, 2),
        target=">= 1.5x one worker for >= 2000 conversations", met=met(ratio, ">=", 1.5, at_size),
        note=f"{n} conversations of 20x20 each way ({'' if at_size else 'below the target size: n/a; '}"
             f"ray.init and worker warm-up excluded); {os.cpu_count()} cores; per-CPU-s "
             f"{one['conversations_per_cpu_s']} (1 worker) vs {two['conversations_per_cpu_s']} (2 workers)")]
