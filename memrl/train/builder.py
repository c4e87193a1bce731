"""The one place trainers are built: `memrl train`, `memrl train --dry-run` and `memrl bench` call it.

    build_trainer(cfg, out) -> (trainer, tok, base)     data rows + rewards, model (tiny / local / init_from),
                                                       TRL SFTConfig / GRPOConfig or memrl PPOConfig, trainer

Every TrainingArguments field a recipe sets goes through `trl_common_args` + `sft_args` / `grpo_args` /
`ppo_config`, so a fix (e.g. PPO's actor learning rate) reaches training, the dry run and the benchmark alike.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from memrl.envs.answer.candidates import make_reward
from memrl.models import resolve_model
from memrl.rewards.control import apply_reward_control
from memrl.train.config import PPO_FROM_RECIPE, PPOConfig, TrainConfig
from memrl.train.data import (
    answer_rl_dataset,
    answer_sft_rows,
    corpus_from_rows,
    load_split,
    make_teacher,
    manager_rl_dataset,
    manager_sft_rows,
)
from memrl.train.episodes import (
    EpisodeReward,
    bank_manager,
    make_env_factory,
    make_episode_rollout,
    probe_answerer,
)
from memrl.train.snapshots import ManagerSnapshotReward

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


# ---------------------------------------------------------------------------------------------------------
# Model
def build_or_load_model(cfg: TrainConfig, out: Path, corpus_rows: list[dict] | None = None):
    """(model, tokenizer): `init_from` > a local `model.path` > the offline tiny model built here."""
    from memrl.policies.backends import (  # deferred: imports torch
        check_model_dir,
        load_policy_model,
        read_adapter_config,
    )

    path = cfg.init_from or cfg.model.path
    if path == "tiny":
        from memrl.train.tiny_model import build_tiny_model_dir  # deferred: imports torch, transformers

        base = out / "base_model"
        if not (base / "config.json").exists():
            corpus = corpus_from_rows(corpus_rows or []) or None
            build_tiny_model_dir(base, corpus, vocab_size=cfg.model.vocab_size, hidden_size=cfg.model.hidden_size,
                                 layers=cfg.model.num_layers, heads=cfg.model.num_heads,
                                 kv_heads=cfg.model.num_kv_heads, max_positions=cfg.model.max_positions,
                                 seed=cfg.seed)
        path = str(base)
    else:
        key = "init_from" if cfg.init_from else "model.path"
        path = resolve_model(path, key)  # a registered name -> its prepared directory
        if read_adapter_config(path) is None:  # name the key at fault (an adapter dir is checked with its base)
            check_model_dir(path, key)
    # dtype auto: bfloat16 weights where the hardware multiplies bf16 natively (LoRA recipes; a full fine-tune keeps
    # float32 weights). LoRA adapters stay float32 (peft upcasts them), and so do the optimizer state, the
    # log-softmax, rewards, advantages and PPO's ratio (memrl.policies.prefix, memrl.train.ppo).
    model, tok = load_policy_model(path, device="cpu" if not _cuda() else "auto", dtype=cfg.model.dtype,
                                   trust_remote_code=cfg.model.trust_remote_code,
                                   is_trainable=True, full_training=not cfg.model.lora)
    print(f"memrl train: weights {getattr(model, 'memrl_dtype_reason', model.dtype)}", flush=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model, tok, path


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def peft_config(cfg: TrainConfig, model=None):
    """The LoraConfig of a LoRA recipe; None for full fine-tuning, and None when `model` already carries a
    trainable adapter (init_from a LoRA run's final_model: training continues on that adapter)."""
    if not cfg.model.lora or hasattr(model, "peft_config"):
        return None
    from peft import LoraConfig

    return LoraConfig(r=cfg.model.lora_r, lora_alpha=cfg.model.lora_alpha, lora_dropout=cfg.model.lora_dropout,
                      target_modules=list(cfg.model.lora_target_modules), task_type="CAUSAL_LM")


# ---------------------------------------------------------------------------------------------------------
# Data
def build_rows(cfg: TrainConfig):
    """(train_rows_or_dataset, reward_funcs) for the configured algorithm and role."""
    convs = load_split(cfg.data.path, cfg.data.train_split, cfg.data.max_conversations)
    if cfg.algo == "sft":
        teacher = make_teacher(cfg.role, cfg.teacher, cfg.teacher_error_rate, cfg.seed, cfg.teacher_wrong_id_share)
        if cfg.role == "manager":
            return manager_sft_rows(convs, cfg.manager_env, teacher), None
        return answer_sft_rows(convs, cfg.answer_env, teacher), None
    if cfg.role == "manager":
        ds = manager_rl_dataset(convs, cfg.manager_env, seed=cfg.seed, max_rows=cfg.max_train_rows,
                                focus=cfg.change_focus)
        return ds, [ManagerSnapshotReward(cfg.manager_env, answerer=probe_answerer(cfg))]

    ds = answer_rl_dataset(convs, cfg.answer_env, seed=cfg.seed, max_rows=cfg.max_train_rows,
                           manager=bank_manager(cfg))
    return ds, [make_reward(cfg.answer_env)]


# ---------------------------------------------------------------------------------------------------------
# TRL plumbing
def trl_common_args(cfg: TrainConfig, out: Path, model=None) -> dict[str, Any]:
    """The TrainingArguments every TRL trainer of a recipe shares. TRL's bf16 flag (autocast) is set on GPU when the
    weights are bf16; on CPU the weights themselves are bf16 (dtype auto) and autocast stays off."""
    import torch  # deferred: heavy

    on_gpu = _cuda()
    bf16_weights = model is not None and model.dtype == torch.bfloat16 or cfg.model.dtype == "bfloat16"
    kw = dict(output_dir=str(out), seed=cfg.seed, data_seed=cfg.seed, max_steps=cfg.max_steps,
              learning_rate=cfg.learning_rate, logging_steps=cfg.logging_steps, report_to=list(cfg.report_to),
              save_strategy="steps" if cfg.save_steps else "no", save_steps=cfg.save_steps or 500,
              save_only_model=False, use_cpu=not on_gpu, bf16=on_gpu and bf16_weights,
              dataloader_num_workers=0, disable_tqdm=False)
    return kw


def log_callback(log, role: str):
    """A transformers callback that appends each TRL log record to the run's metrics.jsonl."""
    from transformers import TrainerCallback

    class _ToMetrics(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs:
                log({"step": state.global_step, **logs})

    return _ToMetrics()


def ppo_config(cfg: TrainConfig):
    """memrl PPO's config for a recipe: the `ppo` section (its own actor and critic learning rates,
    ppo.learning_rate / ppo.critic_learning_rate; TrainConfig.learning_rate is SFT's and GRPO's), with the
    schedule, sampling and bookkeeping fields that every algorithm shares taken from the recipe's top-level
    keys (PPO_FROM_RECIPE; the `ppo` section has no such keys, so nothing set there is overridden)."""

    return PPOConfig(**asdict(cfg.ppo), **{k: getattr(cfg, key) for k, key in PPO_FROM_RECIPE.items()})


# ---------------------------------------------------------------------------------------------------------
# Trainer arguments and trainers
def sft_args(cfg: TrainConfig, out: Path, model=None):
    from trl import SFTConfig  # deferred: imports trl

    return SFTConfig(**trl_common_args(cfg, out, model), per_device_train_batch_size=cfg.batch_size,
                     max_length=cfg.model.max_positions, lr_scheduler_type="cosine", warmup_steps=min(10, cfg.max_steps // 10),
                     completion_only_loss=True, **cfg.trl)


def grpo_args(cfg: TrainConfig, out: Path, model=None, **fixed: Any):
    """GRPOConfig for a recipe; `fixed` are arguments the caller pins (the benchmark's equal-work settings)."""
    from trl import GRPOConfig  # deferred: imports trl

    return GRPOConfig(**{**trl_common_args(cfg, out, model), **fixed}, per_device_train_batch_size=cfg.batch_size,
                      num_generations=cfg.num_generations, max_completion_length=cfg.max_completion_length,
                      temperature=cfg.temperature, beta=cfg.beta, loss_type=cfg.loss_type, use_vllm=cfg.use_vllm,
                      **cfg.trl)


def sft_trainer(cfg: TrainConfig, model, tok, rows, out: Path, callbacks: tuple = ()):
    from datasets import Dataset  # deferred: imports datasets
    from trl import SFTTrainer  # deferred: imports trl

    return quiet_console(SFTTrainer(model=model, args=sft_args(cfg, out, model), train_dataset=Dataset.from_list(rows),
                                    processing_class=tok, peft_config=peft_config(cfg, model), callbacks=list(callbacks)))


def grpo_trainer(cfg: TrainConfig, model, tok, dataset, reward_funcs, out: Path, rollout_func=None,
                 callbacks: tuple = ()):
    from memrl.train.grpo import GRPOTrainer  # deferred: imports trl

    return quiet_console(GRPOTrainer(model=model, reward_funcs=reward_funcs, args=grpo_args(cfg, out, model),
                                     train_dataset=dataset, processing_class=tok, peft_config=peft_config(cfg, model),
                                     rollout_func=rollout_func, callbacks=list(callbacks),
                                     shared_prefix=cfg.shared_prefix))


def quiet_console(trainer):
    """Keep the progress bar, drop the metric dicts transformers prints on every log step (to stdout, through
    ProgressCallback or PrinterCallback): they go to metrics.jsonl and `report_to`, and a demo or bench run
    printed hundreds of them."""
    from transformers.trainer_callback import (  # deferred: imports transformers
        PrinterCallback,
        ProgressCallback,
    )

    class BarOnly(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            pass

    trainer.remove_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(BarOnly)
    return trainer


def ppo_trainer(cfg: TrainConfig, model, tok, dataset, reward_funcs, out: Path, env_factory=None, log=None):
    from memrl.train.ppo import EnvRollouts, PPOTrainer, RowRollouts  # deferred: imports torch

    lora = peft_config(cfg, model)
    if lora is not None:  # memrl PPO trains what it is given: wrap the policy in a fresh LoRA adapter here
        from peft import get_peft_model  # deferred: imports torch

        model = get_peft_model(model, lora)
    rollouts = EnvRollouts(env_factory) if env_factory is not None else RowRollouts(dataset, reward_funcs)
    return PPOTrainer(model, tok, rollouts, ppo_config(cfg), out, metrics_logger=log, share_prefix=cfg.shared_prefix)


def build_trainer(cfg: TrainConfig, out: Path, log=None, callbacks: tuple = (),
                  model_context=contextlib.nullcontext) -> tuple[Any, Any, str]:
    """(trainer, tokenizer, base model path) for a recipe, untrained: what `train(cfg)` runs and `--dry-run` describes.

    `log` (metrics.jsonl writer) adds the metrics callback; `model_context` wraps model building (under
    `accelerate launch`: the main process first)."""
    rows, reward_funcs = build_rows(cfg)
    reward_funcs = apply_reward_control(reward_funcs, cfg.reward_control, cfg.seed)
    corpus = rows if cfg.algo == "sft" else [dict(prompt=r["prompt"], completion=[]) for r in rows]
    with model_context():
        model, tok, base = build_or_load_model(cfg, out, corpus)
    episode = cfg.role == "manager" and cfg.manager_mode == "episode"
    metrics = (log_callback(log, cfg.role),) if log is not None else ()
    if cfg.algo == "sft":
        return sft_trainer(cfg, model, tok, rows, out, (*metrics, *callbacks)), tok, base
    if cfg.algo == "grpo":
        rollout_func = None
        if episode:
            rows, rollout_func = make_episode_rollout(cfg)
            reward_funcs = [EpisodeReward()]
        return grpo_trainer(cfg, model, tok, rows, reward_funcs, out, rollout_func=rollout_func,
                            callbacks=(*metrics, *callbacks)), tok, base
    env_factory = make_env_factory(cfg) if episode else None
    return ppo_trainer(cfg, model, tok, rows, reward_funcs, out, env_factory=env_factory, log=log), tok, base
