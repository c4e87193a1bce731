"""PPO (memrl.train.ppo.PPOTrainer, memrl's own: TRL 1.16 has none): a critic, GAE over tokens and across
environment steps, clipped policy and value losses, KL to a frozen reference.

    algo: ppo
    ppo: {ppo_epochs: 2, minibatch_size: 8, learning_rate: 1.0e-6, critic_learning_rate: 1.0e-5}

The `ppo:` section holds only what PPO has; its iterations, batch, sampling, seed and checkpoint / log cadence
are the recipe's shared keys (PPO_FROM_RECIPE): `ppo.batch_size` is a config error naming `batch_size`. Rows
and rewards: the role's RL rows; a manager in `manager_mode: episode` plays environment episodes instead.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from memrl.train.algorithms.base import Algorithm
from memrl.train.common import peft_config
from memrl.train.episodes import make_env_factory

if TYPE_CHECKING:
    from memrl.train.config import TrainConfig


@dataclass
class PPOSettings:
    """The `ppo:` section of a recipe: what only memrl's PPO has. The schedule, sampling and bookkeeping
    settings every algorithm shares are the recipe's top-level keys (PPO_FROM_RECIPE), never `ppo.*` keys."""

    ppo_epochs: int = 2  # passes over each rollout batch
    minibatch_size: int = 8  # completions (steps) per gradient step
    samples_per_prompt: int = 1  # single-step tasks: completions sampled per drawn prompt (batch_size / this
    #                              prompts per iteration; GRPO's shape with 8): a group's prompt is computed once
    # --- optimisation ---
    learning_rate: float = 1e-6  # actor lr; Memory-R1 uses 1e-6 on 3B-8B models, tiny models need ~1e-3
    critic_learning_rate: float = 1e-5  # critic lr; Memory-R1: 1e-5
    max_grad_norm: float = 1.0
    # --- PPO objective ---
    clip_range: float = 0.2  # policy ratio clip (Schulman et al. 2017)
    clip_range_value: float = 0.2  # value clip around the rollout values
    vf_coef: float = 0.5  # weight of the value loss in the critic's objective
    gamma: float = 1.0  # discount per token; 1.0 is the RLHF default
    lam: float = 0.95  # GAE lambda (Schulman et al. 2016)
    kl_coef: float = 0.05  # per-token KL penalty to the frozen reference (k1 estimator)
    whiten_advantages: bool = True
    # --- critic ---
    critic: str = "separate"  # "separate": own backbone copy + value head; "shared": head on the policy trunk
    # --- transformers path ---
    shared_prefix: bool = True  # one prefill per prompt group in rollouts and in the loss forward/backward
    #                             (memrl.policies.prefix); false: every row in full

    def validate(self) -> None:
        for name in ("learning_rate", "critic_learning_rate"):
            if not getattr(self, name) > 0:  # also catches NaN
                raise ValueError(f"ppo.{name} must be > 0, got {getattr(self, name)}")


# PPOConfig field -> the TrainConfig key that sets it in a recipe (ppo_config).
PPO_FROM_RECIPE = {"total_iterations": "max_steps", "batch_size": "batch_size",
                   "max_new_tokens": "max_completion_length", "temperature": "temperature", "seed": "seed",
                   "save_every": "save_steps", "log_every": "logging_steps"}


@dataclass
class PPOConfig(PPOSettings):
    """What memrl.train.ppo.PPOTrainer runs: the `ppo:` section plus the shared settings (PPO_FROM_RECIPE)."""

    # --- schedule ---
    total_iterations: int = 50  # PPO iterations (one rollout batch + its update epochs each)
    batch_size: int = 16  # completions per iteration (single-step) / episodes per iteration (multi-step)
    # --- sampling ---
    temperature: float = 1.0  # the only sampling knob: log-probs score the full softmax at this temperature,
    #                           so rollouts sample from exactly that (no top-k / top-p / penalties; see ppo.generate)
    max_new_tokens: int = 32
    # --- bookkeeping ---
    seed: int = 0
    save_every: int = 0  # iterations between checkpoints (0: only at the end)
    log_every: int = 1


def ppo_config(cfg: TrainConfig) -> PPOConfig:
    """memrl PPO's config for a recipe: the `ppo` section (its own actor and critic learning rates,
    ppo.learning_rate / ppo.critic_learning_rate; TrainConfig.learning_rate is SFT's and GRPO's), with the
    schedule, sampling and bookkeeping fields that every algorithm shares taken from the recipe's top-level
    keys (PPO_FROM_RECIPE; the `ppo` section has no such keys, so nothing set there is overridden)."""
    return PPOConfig(**asdict(cfg.ppo), **{k: getattr(cfg, key) for k, key in PPO_FROM_RECIPE.items()})


def ppo_trainer(cfg: TrainConfig, model, tok, dataset, reward_funcs, out: Path, env_factory=None, log=None):
    from memrl.train.ppo import EnvRollouts, PPOTrainer, RowRollouts  # deferred: imports torch

    lora = peft_config(cfg, model)
    if lora is not None:  # memrl PPO trains what it is given: wrap the policy in a fresh LoRA adapter here
        from peft import get_peft_model  # deferred: imports torch

        model = get_peft_model(model, lora)
    rollouts = EnvRollouts(env_factory) if env_factory is not None else RowRollouts(dataset, reward_funcs)
    return PPOTrainer(model, tok, rollouts, ppo_config(cfg), out, metrics_logger=log)


class PPO(Algorithm):
    name = "ppo"
    settings = PPOSettings
    implementation = "memrl.train.ppo"
    governed_keys = {f"ppo.{k}": v for k, v in PPO_FROM_RECIPE.items()}
    former_keys = {"shared_prefix": "ppo.shared_prefix"}

    def validate(self, cfg: TrainConfig) -> None:
        k = cfg.ppo.samples_per_prompt
        if k < 1 or cfg.batch_size % k:
            raise ValueError(f"ppo.samples_per_prompt ({k}) must be >= 1 and divide batch_size ({cfg.batch_size})")

    def build_trainer(self, cfg, model, tok, rows, reward_funcs, out, log=None, callbacks=()):
        episode = cfg.role == "manager" and cfg.manager_mode == "episode"
        env_factory = make_env_factory(cfg) if episode else None
        return ppo_trainer(cfg, model, tok, rows, reward_funcs, out, env_factory=env_factory, log=log)

    def fit(self, trainer, checkpoint: str | None) -> None:
        if checkpoint:
            trainer.load_checkpoint(checkpoint)
        trainer.train()

    def policy(self, trainer):
        return trainer.policy

    def shares_prefix(self, cfg: TrainConfig) -> bool:
        return cfg.ppo.shared_prefix
