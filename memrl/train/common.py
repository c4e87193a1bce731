"""What every algorithm's trainer construction shares (memrl.train.algorithms): the model, LoRA, the RL rows and
their rewards, and the TRL plumbing (TrainingArguments, the metrics callback, a quiet console, checkpoints).

    build_or_load_model(cfg, out, corpus) -> (model, tok, path)    init_from > a local model.path > the tiny model
    rl_rows(cfg) -> (dataset, reward_funcs)                        the RL rows of the role, and their rewards
    trl_common_args(cfg, out, model)                               what every TRL config of a recipe shares

Every TrainingArguments field a recipe sets goes through `trl_common_args` + the algorithm's own arguments
(`sft_args`, `grpo_args`, `ppo_config` in memrl.train.algorithms), so a fix reaches training, the dry run and the
benchmark alike.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memrl.envs.answer.candidates import make_reward
from memrl.models import resolve_model
from memrl.policies.baselines import make_baseline
from memrl.train.data import answer_rl_dataset, corpus_from_rows, load_split, manager_rl_dataset
from memrl.train.episodes import bank_manager, probe_answerer
from memrl.train.run import CheckpointError
from memrl.train.snapshots import ManagerSnapshotReward

if TYPE_CHECKING:
    from memrl.train.config import TrainConfig

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


# ---------------------------------------------------------------------------------------------------------
# Model
def build_or_load_model(cfg: TrainConfig, out: Path, corpus_rows: list[dict] | None = None):
    """(model, tokenizer, path): `init_from` > a local `model.path` > the offline tiny model built here."""
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
    model, tok = load_policy_model(path, device="cpu" if not cuda() else "auto", dtype=cfg.model.dtype,
                                   trust_remote_code=cfg.model.trust_remote_code,
                                   is_trainable=True, full_training=not cfg.model.lora)
    print(f"memrl train: weights {getattr(model, 'memrl_dtype_reason', model.dtype)}", flush=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model, tok, path


def cuda() -> bool:
    import torch  # deferred: heavy

    return torch.cuda.is_available()


def peft_config(cfg: TrainConfig, model=None):
    """The LoraConfig of a LoRA recipe; None for full fine-tuning, and None when `model` already carries a
    trainable adapter (init_from a LoRA run's final_model: training continues on that adapter)."""
    if not cfg.model.lora or hasattr(model, "peft_config"):
        return None
    from peft import LoraConfig  # deferred: imports torch

    return LoraConfig(r=cfg.model.lora_r, lora_alpha=cfg.model.lora_alpha, lora_dropout=cfg.model.lora_dropout,
                      target_modules=list(cfg.model.lora_target_modules), task_type="CAUSAL_LM")


# ---------------------------------------------------------------------------------------------------------
# Data
def rl_rows(cfg: TrainConfig):
    """(dataset, reward_funcs) of an RL recipe: manager snapshot rows scored by applying the sampled operations
    (QA probes answered by the frozen `probe_answerer`), or answer rows scored by the answer environment's reward."""
    convs = load_split(cfg.data.path, cfg.data.train_split, cfg.data.max_conversations)
    if cfg.role == "manager":
        ds = manager_rl_dataset(convs, cfg.manager_env, seed=cfg.seed, max_rows=cfg.max_train_rows,
                                focus=cfg.change_focus, manager=state_manager(cfg), probed_only=cfg.probed_only,
                                start_steps=cfg.start_steps)
        return ds, [ManagerSnapshotReward(cfg.manager_env, answerer=probe_answerer(cfg))]
    ds = answer_rl_dataset(convs, cfg.answer_env, seed=cfg.seed, max_rows=cfg.max_train_rows,
                           manager=bank_manager(cfg))
    return ds, [make_reward(cfg.answer_env)]


def state_manager(cfg: TrainConfig):
    """The manager that writes the bank a manager-RL row starts from: the named baseline, or None for "auto"
    (`snapshot_dataset`'s own default: gold-op replay on data with gold ops, else add_only)."""
    return None if cfg.state_builder == "auto" else make_baseline(cfg.state_builder)


# ---------------------------------------------------------------------------------------------------------
# TRL plumbing
def trl_common_args(cfg: TrainConfig, out: Path, model=None) -> dict[str, Any]:
    """The TrainingArguments every TRL trainer of a recipe shares. TRL's bf16 flag (autocast) is set on GPU when the
    weights are bf16; on CPU the weights themselves are bf16 (dtype auto) and autocast stays off."""
    import torch  # deferred: heavy

    on_gpu = cuda()
    bf16_weights = model is not None and model.dtype == torch.bfloat16 or cfg.model.dtype == "bfloat16"
    kw = dict(output_dir=str(out), seed=cfg.seed, data_seed=cfg.seed, max_steps=cfg.max_steps,
              learning_rate=cfg.learning_rate, logging_steps=cfg.logging_steps, report_to=list(cfg.report_to),
              save_strategy="steps" if cfg.save_steps else "no", save_steps=cfg.save_steps or 500,
              save_only_model=False, use_cpu=not on_gpu, bf16=on_gpu and bf16_weights,
              dataloader_num_workers=0, disable_tqdm=False)
    return kw


def log_callback(log, role: str):
    """A transformers callback that appends each TRL log record to the run's metrics.jsonl."""
    from transformers import TrainerCallback  # deferred: imports transformers

    class _ToMetrics(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs:
                log({"step": state.global_step, **logs})

    return _ToMetrics()


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


def check_trl_checkpoint(ck: str) -> None:
    """A TRL checkpoint a run is about to continue: name the bad file instead of letting transformers fail
    somewhere deep."""
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
    from memrl.policies.backends import unreadable_safetensors  # deferred: imports torch

    bad = unreadable_safetensors(weights, read_tensors=True)
    if bad:
        raise CheckpointError(f"{bad[0]}: cannot be read ({bad[1]})")
