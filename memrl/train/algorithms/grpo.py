"""GRPO (memrl.train.grpo.GRPOTrainer: TRL's, with one prefill per prompt group): rewards of `num_generations`
completions of a prompt, each scored against its group's mean.

    algo: grpo
    grpo: {num_generations: 8, beta: 0.0, loss_type: dapo}

Rows and rewards: the role's RL rows (memrl.train.common.rl_rows); a manager in `manager_mode: episode` trains on
environment windows through TRL's `rollout_func` (memrl.train.episodes). Any other GRPOConfig field goes in `trl:`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from memrl.train.algorithms.base import TRLAlgorithm
from memrl.train.common import peft_config, quiet_console, trl_common_args
from memrl.train.episodes import EpisodeReward, make_episode_rollout

if TYPE_CHECKING:
    from memrl.train.config import TrainConfig


@dataclass
class GRPOSettings:
    """The `grpo:` section of a recipe: what only GRPO has (TRL's GRPOConfig names, passed to it as they are)."""

    num_generations: int = 8  # completions per prompt (the group); batch_size counts completions, so it is a multiple
    beta: float = 0.0  # KL to the reference (TRL default 0: no reference model is kept)
    loss_type: str = "dapo"  # grpo | dr_grpo | dapo | bnpo | ...: TRL's GRPO variants
    use_vllm: bool = False  # GPU only: TRL generates with vLLM (colocate mode)
    shared_prefix: bool = True  # one prefill per prompt group: generation and the loss forward/backward compute a
    #                             group's prompt once (memrl.policies.prefix); false: TRL's own path

    def validate(self) -> None:
        if self.num_generations <= 0:
            raise ValueError(f"grpo.num_generations must be > 0, got {self.num_generations}")


def grpo_args(cfg: TrainConfig, out: Path, model=None, **fixed: Any):
    """GRPOConfig for a recipe; `fixed` are arguments the caller pins (the benchmark's equal-work settings)."""
    from trl import GRPOConfig  # deferred: imports trl

    g = cfg.grpo
    return GRPOConfig(**{**trl_common_args(cfg, out, model), **fixed}, per_device_train_batch_size=cfg.batch_size,
                      num_generations=g.num_generations, max_completion_length=cfg.max_completion_length,
                      temperature=cfg.temperature, beta=g.beta, loss_type=g.loss_type, use_vllm=g.use_vllm,
                      **cfg.trl)


def grpo_trainer(cfg: TrainConfig, model, tok, dataset, reward_funcs, out: Path, rollout_func=None,
                 callbacks: Sequence = ()):
    from memrl.train.grpo import GRPOTrainer  # deferred: imports trl

    return quiet_console(GRPOTrainer(model=model, reward_funcs=reward_funcs, args=grpo_args(cfg, out, model),
                                     train_dataset=dataset, processing_class=tok, peft_config=peft_config(cfg, model),
                                     rollout_func=rollout_func, callbacks=list(callbacks),
                                     shared_prefix=cfg.grpo.shared_prefix))


class GRPO(TRLAlgorithm):
    name = "grpo"
    settings = GRPOSettings
    implementation = "TRL GRPOTrainer"
    former_keys = {"num_generations": "grpo.num_generations", "beta": "grpo.beta", "loss_type": "grpo.loss_type",
                   "use_vllm": "grpo.use_vllm", "shared_prefix": "grpo.shared_prefix"}

    def trl_config(self) -> type:
        from trl import GRPOConfig  # deferred: imports trl

        return GRPOConfig

    def validate(self, cfg: TrainConfig) -> None:
        if cfg.batch_size % cfg.grpo.num_generations:
            raise ValueError(f"batch_size ({cfg.batch_size}) must be a multiple of grpo.num_generations "
                             f"({cfg.grpo.num_generations}): TRL groups completions by prompt")

    def build_trainer(self, cfg, model, tok, rows, reward_funcs, out, log=None, callbacks=()):
        rollout_func = None
        if cfg.role == "manager" and cfg.manager_mode == "episode":
            rows, rollout_func = make_episode_rollout(cfg)
            reward_funcs = [EpisodeReward()]
        return grpo_trainer(cfg, model, tok, rows, reward_funcs, out, rollout_func=rollout_func,
                            callbacks=self.callbacks(cfg, log, callbacks))

    def shares_prefix(self, cfg: TrainConfig) -> bool:
        return cfg.grpo.shared_prefix
