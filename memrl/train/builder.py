"""The one place trainers are built: `memrl train`, `memrl train --dry-run` and `memrl bench` call it.

    build_trainer(cfg, out) -> (trainer, tok, base)     the algorithm's rows and rewards (reward_control applied),
                                                       the model (tiny / local / init_from), its trainer, untrained

What differs between algorithms is asked of the registered algorithm (memrl.train.algorithms): its rows, the
corpus of the tiny model's tokenizer, and its trainer (TRL SFTConfig / GRPOConfig or memrl's PPOConfig, built by
`sft_args` / `grpo_args` / `ppo_config` on top of `memrl.train.common.trl_common_args`), so a fix reaches
training, the dry run and the benchmark alike.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from memrl.rewards.control import apply_reward_control
from memrl.train import algorithms
from memrl.train.common import build_or_load_model
from memrl.train.config import TrainConfig


def build_trainer(cfg: TrainConfig, out: Path, log=None, callbacks: tuple = (),
                  model_context=contextlib.nullcontext) -> tuple[Any, Any, str]:
    """(trainer, tokenizer, base model path) for a recipe, untrained: what `train(cfg)` runs and `--dry-run` describes.

    `log` (metrics.jsonl writer) reaches the trainer's metrics (TRL: a callback); `model_context` wraps model
    building (under `accelerate launch`: the main process first)."""
    algorithm = algorithms.get(cfg.algo)
    rows, reward_funcs = algorithm.rows(cfg)
    reward_funcs = apply_reward_control(reward_funcs, cfg.reward_control, cfg.seed)
    with model_context():
        model, tok, base = build_or_load_model(cfg, out, algorithm.corpus(rows))
    trainer = algorithm.build_trainer(cfg, model, tok, rows, reward_funcs, out, log=log, callbacks=tuple(callbacks))
    return trainer, tok, base
