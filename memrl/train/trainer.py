"""`memrl train`: setup -> train -> save -> cleanup, for SFT (TRL), GRPO (TRL) and PPO (ours).

    result = train(load_config(TrainConfig, "configs/train/grpo_answer_tiny.yaml", ["max_steps=50"]))

The three algorithms share data building (memrl.train.data), the model factory, the run directory layout
(memrl.train.run) and resume semantics: `resume=true` continues from the newest checkpoint in
`output_dir` with the same data order and optimizer state.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from memrl.train.config import TrainConfig

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


# ---------------------------------------------------------------------------------------------------------
# Model
def build_or_load_model(cfg: TrainConfig, out: Path, corpus_rows: list[dict] | None = None):
    """(model, tokenizer): `init_from` > a local `model.path` > the offline tiny model built here."""
    from memrl.policies.backends import load_policy_model

    path = cfg.init_from or cfg.model.path
    if path == "tiny":
        from memrl.train.data import corpus_from_rows
        from memrl.train.tiny_model import build_tiny_model_dir

        base = out / "base_model"
        if not (base / "config.json").exists():
            corpus = corpus_from_rows(corpus_rows or []) or None
            build_tiny_model_dir(base, corpus, vocab_size=cfg.model.vocab_size, hidden_size=cfg.model.hidden_size,
                                 layers=cfg.model.num_layers, heads=cfg.model.num_heads,
                                 kv_heads=cfg.model.num_kv_heads, max_positions=cfg.model.max_positions,
                                 seed=cfg.seed)
        path = str(base)
    model, tok = load_policy_model(path, device="cpu" if not _cuda() else "auto", dtype=cfg.model.dtype,
                                   trust_remote_code=cfg.model.trust_remote_code,
                                   is_trainable=True)
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
    from memrl.train import data as D

    convs = D.load_split(cfg.data.path, cfg.data.train_split, cfg.data.max_conversations)
    if cfg.algo == "sft":
        teacher = D.make_teacher(cfg.role, cfg.teacher, cfg.teacher_error_rate, cfg.seed, cfg.teacher_wrong_id_share)
        if cfg.role == "manager":
            return D.manager_sft_rows(convs, cfg.manager_env, teacher), None
        return D.answer_sft_rows(convs, cfg.answer_env, teacher), None
    if cfg.role == "manager":
        from memrl.envs.manager_env import ManagerSnapshotReward

        from memrl.train.episodes import probe_answerer

        ds = D.manager_rl_dataset(convs, cfg.manager_env, seed=cfg.seed, max_rows=cfg.max_train_rows,
                                  focus=cfg.change_focus)
        return ds, [ManagerSnapshotReward(cfg.manager_env, answerer=probe_answerer(cfg))]
    from memrl.envs.answer_env import make_reward
    from memrl.train.episodes import bank_manager

    ds = D.answer_rl_dataset(convs, cfg.answer_env, seed=cfg.seed, max_rows=cfg.max_train_rows,
                             manager=bank_manager(cfg))
    return ds, [make_reward(cfg.answer_env)]


# ---------------------------------------------------------------------------------------------------------
# TRL plumbing
def _trl_common(cfg: TrainConfig, out: Path) -> dict[str, Any]:
    on_gpu = _cuda()
    kw = dict(output_dir=str(out), seed=cfg.seed, data_seed=cfg.seed, max_steps=cfg.max_steps,
              learning_rate=cfg.learning_rate, logging_steps=cfg.logging_steps, report_to=list(cfg.report_to),
              save_strategy="steps" if cfg.save_steps else "no", save_steps=cfg.save_steps or 500,
              save_only_model=False, use_cpu=not on_gpu, bf16=on_gpu and cfg.model.dtype == "bfloat16",
              dataloader_num_workers=0, disable_tqdm=False)
    return kw


def _log_callback(log, role: str):
    from transformers import TrainerCallback

    class _ToMetrics(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs:
                log({"step": state.global_step, **logs})

    return _ToMetrics()


def _resume_path(cfg: TrainConfig, out: Path) -> str | None:
    if not cfg.resume or cfg.resume.lower() in ("false", "no", "0"):
        return None
    if cfg.resume.lower() in ("true", "yes", "1", "latest"):
        from memrl.train.ppo import latest_checkpoint

        ck = latest_checkpoint(out)
        return str(ck) if ck else None
    p = Path(cfg.resume)
    if not p.exists():
        from memrl.train.ppo import CheckpointError

        raise CheckpointError(f"resume: checkpoint {p} does not exist")
    return str(p)


def _check_trainer_checkpoint(ck: str) -> None:
    """Name the bad file instead of letting transformers fail somewhere deep."""
    from memrl.train.ppo import CheckpointError

    p = Path(ck)
    for rel in ("trainer_state.json",):
        if not (p / rel).exists():
            raise CheckpointError(f"checkpoint {p} is incomplete: missing {rel}")
    try:
        json.loads((p / "trainer_state.json").read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{p / 'trainer_state.json'}: corrupt ({e})") from None
    weights = list(p.glob("*.safetensors"))
    if not weights:
        raise CheckpointError(f"checkpoint {p}: no *.safetensors weights")
    from safetensors import safe_open

    for w in weights:
        try:
            with safe_open(str(w), "pt") as f:
                for k in f.keys():
                    f.get_tensor(k)
        except Exception as e:
            raise CheckpointError(f"{w}: cannot be read ({e})") from None


def run_sft(cfg: TrainConfig, model, tok, rows, out: Path, log, callbacks: tuple = ()) -> Any:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(**_trl_common(cfg, out), per_device_train_batch_size=cfg.batch_size,
                     max_length=cfg.model.max_positions, lr_scheduler_type="cosine", warmup_steps=min(10, cfg.max_steps // 10),
                     completion_only_loss=True, **cfg.trl)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok,
                         peft_config=peft_config(cfg, model), callbacks=[_log_callback(log, cfg.role), *callbacks])
    ck = _resume_path(cfg, out)
    if ck:
        _check_trainer_checkpoint(ck)
    trainer.train(resume_from_checkpoint=ck)
    return trainer


def run_grpo(cfg: TrainConfig, model, tok, dataset, reward_funcs, out: Path, log, rollout_func=None,
             callbacks: tuple = ()) -> Any:
    from trl import GRPOConfig, GRPOTrainer

    args = GRPOConfig(**_trl_common(cfg, out), per_device_train_batch_size=cfg.batch_size,
                      num_generations=cfg.num_generations, max_completion_length=cfg.max_completion_length,
                      temperature=cfg.temperature, beta=cfg.beta, loss_type=cfg.loss_type, use_vllm=cfg.use_vllm,
                      **cfg.trl)
    trainer = GRPOTrainer(model=model, reward_funcs=reward_funcs, args=args, train_dataset=dataset,
                          processing_class=tok, peft_config=peft_config(cfg, model), rollout_func=rollout_func,
                          callbacks=[_log_callback(log, cfg.role), *callbacks])
    ck = _resume_path(cfg, out)
    if ck:
        _check_trainer_checkpoint(ck)
    trainer.train(resume_from_checkpoint=ck)
    return trainer


def ppo_config(cfg: TrainConfig):
    """memrl PPO's config for a recipe: the `ppo` section (its own actor and critic learning rates,
    ppo.learning_rate / ppo.critic_learning_rate; TrainConfig.learning_rate is SFT's and GRPO's), with the
    schedule, sampling and bookkeeping fields that every algorithm shares taken from the recipe."""
    from memrl.train.ppo import PPOConfig

    return PPOConfig(**{**asdict(cfg.ppo), "total_iterations": cfg.max_steps, "batch_size": cfg.batch_size,
                        "max_new_tokens": cfg.max_completion_length, "temperature": cfg.temperature,
                        "seed": cfg.seed, "save_every": cfg.save_steps, "log_every": cfg.logging_steps})


def run_ppo(cfg: TrainConfig, model, tok, dataset, reward_funcs, out: Path, log, env_factory=None):
    from memrl.train.ppo import EnvRollouts, PPOTrainer, RowRollouts

    p = ppo_config(cfg)
    lora = peft_config(cfg, model)
    if lora is not None:  # memrl PPO trains what it is given: wrap the policy in a fresh LoRA adapter here
        from peft import get_peft_model

        model = get_peft_model(model, lora)
    rollouts = EnvRollouts(env_factory) if env_factory is not None else RowRollouts(dataset, reward_funcs)
    trainer = PPOTrainer(model, tok, rollouts, p, out, metrics_logger=log)
    ck = _resume_path(cfg, out)
    if ck:
        trainer.load_checkpoint(ck)
    trainer.train()
    return trainer


# ---------------------------------------------------------------------------------------------------------
def train(cfg: TrainConfig, progress: bool = True, callbacks: tuple = ()) -> dict[str, Any]:
    """Run one recipe end to end; returns a summary (also written to <output_dir>/summary.json)."""
    from memrl.config import save_resolved, to_yaml
    from memrl.data.io import write_json
    from memrl.train.run import MetricsLog, plot_curves, write_model_card

    from accelerate import PartialState

    t0 = time.time()
    # Under `accelerate launch` every rank runs this function: only the main process writes the run
    # directory, and the tiny base model is built once (main process first, the others then load it).
    state = PartialState()
    main = state.is_main_process
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if main:
        save_resolved(cfg, out)
    import torch

    torch.manual_seed(cfg.seed)
    resuming = bool(_resume_path(cfg, out)) if cfg.resume else False
    if resuming:
        from memrl.train.commands import prepare_resume

        prepare_resume(cfg)
    log = MetricsLog(out / "metrics.jsonl", resume=resuming) if main else (lambda m: None)
    rows, reward_funcs = build_rows(cfg)
    corpus = rows if cfg.algo == "sft" else [dict(prompt=r["prompt"], completion=[]) for r in rows]
    with state.main_process_first():
        model, tok, base = build_or_load_model(cfg, out, corpus)
    if cfg.algo == "sft":
        trainer = run_sft(cfg, model, tok, rows, out, log, callbacks)
        model = trainer.model
    elif cfg.algo == "grpo":
        rollout_func = None
        if cfg.role == "manager" and cfg.manager_mode == "episode":
            from memrl.train.episodes import make_episode_rollout

            from memrl.train.episodes import EpisodeReward

            conv_rows, rollout_func = make_episode_rollout(cfg)
            rows, reward_funcs = conv_rows, [EpisodeReward()]
        trainer = run_grpo(cfg, model, tok, rows, reward_funcs, out, log, rollout_func=rollout_func,
                           callbacks=callbacks)
        model = trainer.model
    else:
        env_factory = None
        if cfg.role == "manager" and cfg.manager_mode == "episode":
            from memrl.train.episodes import make_env_factory

            env_factory = make_env_factory(cfg)
        trainer = run_ppo(cfg, model, tok, rows, reward_funcs, out, log, env_factory=env_factory)
        model = trainer.policy
    final = out / "final_model"
    if not main:
        return {"algo": cfg.algo, "role": cfg.role, "final_model": str(final), "main_process": False}
    # A peft model saves its adapter (whose config names the base); a full model saves all weights.
    model.save_pretrained(final, safe_serialization=True)
    tok.save_pretrained(final)
    history = log.read()
    rewards = [r["reward"] for r in history if isinstance(r.get("reward"), (int, float))]
    summary = {
        "algo": cfg.algo, "role": cfg.role, "base_model": base, "steps": cfg.max_steps,
        "wall_seconds": round(time.time() - t0, 1),
        "reward_first": sum(rewards[:5]) / len(rewards[:5]) if rewards else None,
        "reward_last": sum(rewards[-5:]) / len(rewards[-5:]) if rewards else None,
        "final_model": str(final),
    }
    reward_desc = ("teacher traces (" + cfg.teacher + ")" if cfg.algo == "sft" else
                   "manager snapshot reward: " + json.dumps(cfg.manager_env.weights()) if cfg.role == "manager"
                   else f"answer reward ({cfg.answer_env.mode} preset {cfg.answer_env.weights or 'default'})")
    write_model_card(final, algo=cfg.algo, role=cfg.role, base=base, data=cfg.data.path, reward=reward_desc,
                     results={k: v for k, v in summary.items() if isinstance(v, (int, float))},
                     config_yaml=to_yaml(cfg))
    plot_curves(history, out / "curves.png", title=f"{cfg.algo} {cfg.role}")
    write_json(out / "summary.json", summary)
    return summary
