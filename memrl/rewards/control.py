"""The shuffled-reward control: the same training compute with the reward's link to the output cut.

`ShuffledReward(fn, seed)` calls the wrapped TRL-signature reward function and returns its values permuted
across the batch (a fresh seeded permutation per call). The reward distribution, the batch size and every
other setting stay the same, so a run trained on it costs what the real run costs; what it cannot learn is
which output earned which reward. A result that the shuffled run also reaches is not learning from the
reward (format drift, length drift, a change of sampling temperature ...).

Values that are None (the row has no applicable reward) keep their positions; only the scored values are
permuted among themselves.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

REWARD_CONTROLS = ("none", "shuffle")


class ShuffledReward:
    def __init__(self, fn: Callable[..., list[float | None]], seed: int = 0):
        self.fn = fn
        self.rng = random.Random(f"shuffled-reward:{seed}")
        self.__name__ = f"{getattr(fn, '__name__', type(fn).__name__)}_shuffled"

    def __call__(self, prompts: Sequence[Any] | None = None, completions: Sequence[Any] | None = None,
                 **columns: Any) -> list[float | None]:
        values = list(self.fn(prompts=prompts, completions=completions, **columns))
        scored = [i for i, v in enumerate(values) if v is not None]
        perm = scored[:]
        self.rng.shuffle(perm)
        out = list(values)
        for i, j in zip(scored, perm):
            out[i] = values[j]
        return out


def apply_reward_control(funcs: Sequence[Callable] | None, control: str, seed: int = 0) -> list[Callable] | None:
    """The reward functions a run trains on under `control` ("none": as given; "shuffle": each permuted)."""
    if control not in REWARD_CONTROLS:
        raise ValueError(f"reward_control: {control!r} is not one of {list(REWARD_CONTROLS)}")
    if funcs is None or control == "none":
        return None if funcs is None else list(funcs)
    return [ShuffledReward(f, seed + i) for i, f in enumerate(funcs)]
