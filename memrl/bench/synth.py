"""Synthesis figures: conversations per second, one Ray worker against two."""

from __future__ import annotations

import os

from memrl.bench.figures import Context, Figure, met, rounded
from memrl.data_synth.synth import benchmark_synthesis


# ---- synthesis (issue 3) -------------------------------------------------------------------------------------
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
