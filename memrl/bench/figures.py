"""Figure records, the statistics they use, the run sizes and the shared context of one bench run."""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memrl.data.loaders.locomo import load_locomo

REPO_ROOT = Path(__file__).resolve().parents[2]
CONV26 = REPO_ROOT / "data" / "locomo" / "conv-26.json"


# ---- figures ------------------------------------------------------------------------------------------------------
@dataclass
class Figure:
    name: str
    value: float | None
    unit: str
    reference: str | None = None  # what `ratio` divides by (measured in this run), or a quoted number
    ratio: float | None = None  # value / reference value, both measured in this run
    target: str | None = None  # from the issue that set it
    met: bool | None = None  # None: no target, or this run did not measure at the target's size
    note: str = ""
    load_1min: float | None = None


def met(value: float | None, op: str, bound: float, applies: bool = True) -> bool | None:
    if value is None or not applies:
        return None
    return bool(value <= bound) if op == "<=" else bool(value >= bound)


def rounded(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(float(x), nd)


def median_ci(xs: list[float], level: float = 0.95, samples: int = 2000) -> tuple[float, float]:
    """Percentile-bootstrap interval of the median (seeded): how far noise alone moves the figure."""
    rng = random.Random(0)
    meds = sorted(statistics.median(rng.choices(xs, k=len(xs))) for _ in range(samples))
    return meds[int((1 - level) / 2 * samples)], meds[int((1 + level) / 2 * samples) - 1]


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


@dataclass
class Sizes:
    """Problem sizes; `quick` shrinks every one of them so the whole run fits in ~2 minutes on 2 cores."""

    bank_sizes: tuple[int, ...] = (10_000, 100_000)
    bank_queries: int = 200
    apply_ops: int = 100_000
    synth_single: int = 500
    synth_ray: int = 2000
    env_sessions: int | None = None  # None: all of conv-26
    env_snapshot_calls: int = 200
    eval_copies: int = 10  # x conv-26 = 1,990 questions (the size of locomo10)
    gen_prompts: int = 32
    gen_tokens: int = 32
    gen_batch: int = 16
    rl_completions: int = 8  # completions per step (GRPO: prompts x generations; PPO: its batch)
    rl_generations: int = 4
    rl_completion_tokens: int = 32
    rl_warmup: int = 1
    rl_steps: int = 10  # timed steps per trainer and round (per-step times vary +-30% on a shared machine)
    rl_rounds: int = 4  # rounds of fresh plain + memrl trainers
    ppo_steps: int = 8

    @classmethod
    def quick(cls) -> Sizes:
        return cls(bank_sizes=(10_000,), bank_queries=100, apply_ops=20_000, synth_single=60, synth_ray=120,
                   env_sessions=4, env_snapshot_calls=40, eval_copies=1, gen_prompts=8, gen_tokens=16, gen_batch=8,
                   rl_completions=4, rl_generations=2, rl_completion_tokens=16, rl_warmup=1, rl_steps=5,
                   rl_rounds=2, ppo_steps=2)


@dataclass
class Context:
    sizes: Sizes
    quick: bool
    threads: int | None
    work: Path
    shared: dict[str, Any] = field(default_factory=dict)  # results one group hands to another

    def tiny_model(self) -> Path:
        if "model_dir" not in self.shared:
            from memrl.train.tiny_model import build_tiny_model_dir  # deferred: imports torch, transformers

            self.shared["model_dir"] = build_tiny_model_dir(self.work / "tiny_model")
        return self.shared["model_dir"]

    def conv26(self):
        if "conv26" not in self.shared:

            self.shared["conv26"] = load_locomo(CONV26)[0]
        return self.shared["conv26"]
