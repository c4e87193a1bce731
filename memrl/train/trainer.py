"""`memrl train`: setup -> train -> save -> cleanup, for every registered algorithm (memrl.train.algorithms).

    result = train(load_config(TrainConfig, "configs/train/grpo_answer_tiny.yaml", ["max_steps=50"]))

The trainer comes from `memrl.train.builder.build_trainer` (the one place trainers are built); this module
resumes it (`memrl.train.run.resume_path`: `resume=true` continues from the newest checkpoint in `output_dir`
with the same data order and optimizer state; the algorithm's `fit` knows its checkpoints), trains it, and
writes the run directory (memrl.train.run).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from memrl.config import as_dict, save_resolved, to_yaml
from memrl.data.io import write_json
from memrl.policies.baselines import ORACLE_BASELINES
from memrl.train import algorithms, guards
from memrl.train.builder import build_trainer
from memrl.train.config import TrainConfig
from memrl.train.data import split_files
from memrl.train.run import (
    MetricsLog,
    plot_curves,
    prepare_resume,
    resume_path,
    resuming,
    write_model_card,
    write_run_readme,
)

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


def _resume_path(cfg: TrainConfig, out: Path) -> str | None:
    return resume_path(cfg.resume, out)


def fit(cfg: TrainConfig, trainer: Any, out: Path) -> Any:
    """Train a built trainer to cfg.max_steps, from the checkpoint `cfg.resume` names (checked first)."""
    algorithms.get(cfg.algo).fit(trainer, _resume_path(cfg, out))
    return trainer


def oracle_inputs(cfg: TrainConfig) -> list[str]:
    """What of the run reads gold labels (the outcome protocol: a headline result has none): the manager env's oracle
    inputs and reward terms, a gold teacher, gold evidence added to the answer candidates, an oracle bank."""
    out = list(cfg.manager_env.oracle_inputs()) if cfg.role == "manager" else []
    if cfg.role == "manager" and algorithms.get(cfg.algo).rl and cfg.state_builder in ("auto", *ORACLE_BASELINES):
        out.append(f"state_builder={cfg.state_builder} (the banks RL rows start from are replayed from gold ops on "
                   "data that has them)")
    if cfg.role == "manager" and cfg.change_focus > 0:
        out.append(f"change_focus={cfg.change_focus} (training rows chosen by their gold ops)")
    # probed_only is not listed: it keeps the rows whose QA probes exist, and the probes (questions and their
    # evidence turns) are what the outcome reward itself is made of.
    out += algorithms.get(cfg.algo).oracle_inputs(cfg)
    if cfg.role == "answer":
        if cfg.answer_env.include_gold:
            out.append("answer_env.include_gold (gold evidence added to the candidates)")
        if cfg.answer_env.manager == "auto" or cfg.answer_env.manager in ORACLE_BASELINES:
            out.append(f"answer_env.manager={cfg.answer_env.manager} (banks written from gold ops)")
    return out


def train(cfg: TrainConfig, progress: bool = True, callbacks: tuple = ()) -> dict[str, Any]:
    """Run one recipe end to end; returns a summary (also written to <output_dir>/summary.json)."""
    import torch  # deferred: imports torch
    from accelerate import PartialState  # deferred: imports accelerate

    t0 = time.time()
    # Under `accelerate launch` every rank runs this function: only the main process writes the run
    # directory, and the tiny base model is built once (main process first, the others then load it).
    state = PartialState()
    main = state.is_main_process
    out = Path(cfg.output_dir)
    resume_requested = resuming(cfg.resume)
    guards.check_recipe(cfg)
    if main:
        # Refuse a directory holding another run (or clear it when overwrite=true); a resume must carry the
        # config of the run it continues. Both happen before config.yaml is rewritten.
        guards.claim_run_dir(out, resume_requested=resume_requested, overwrite=cfg.overwrite)
        if resume_requested:
            guards.check_resume_config(out, as_dict(cfg), ignore=TrainConfig.GOVERNED_KEYS,
                                       moved=TrainConfig.MOVED_KEYS, schema=TrainConfig)
        # The sha256 of the training files read: a resume continues its checkpoint only on the same data.
        read = split_files(cfg.data.path, cfg.data.train_split) if cfg.data.path else []
        data_files = guards.data_fingerprint(read)
        ck = _resume_path(cfg, out) if resume_requested else None
        if ck:
            guards.check_data_fingerprint(Path(ck).parent, data_files)
        elif resume_requested:  # resume=true is also how scripts (re)start a run: start fresh, and say so
            held = "a run without a checkpoint to continue" if guards.run_files(out) else "no run"
            print(f"resume=true: {out} holds {held}; starting a fresh run from step 0", file=sys.stderr)
        save_resolved(cfg, out)
        guards.record_data_fingerprint(out, data_files, cfg.data.path, cfg.data.train_split)
    torch.manual_seed(cfg.seed)
    continuing = bool(_resume_path(cfg, out)) if resume_requested else False
    if continuing:
        prepare_resume(cfg)
    metrics = MetricsLog(out / "metrics.jsonl", resume=continuing) if main else None
    # Every logged row passes the divergence guard (TRL's callback and PPO's logger alike).
    log = guards.FiniteMetrics(metrics if main else (lambda m: None), cfg.learning_rate)
    trainer, tok, base = build_trainer(cfg, out, log, callbacks, model_context=state.main_process_first)
    fit(cfg, trainer, out)
    algorithm = algorithms.get(cfg.algo)
    model = algorithm.policy(trainer)
    final = out / "final_model"
    if not main:
        return {"algo": cfg.algo, "role": cfg.role, "final_model": str(final), "main_process": False}
    guards.assert_finite_weights(model)
    # A peft model saves its adapter (whose config names the base); a full model saves all weights. Only the trained
    # adapter: GRPO with beta > 0 continuing an adapter (init_from a LoRA run) holds TRL's frozen copy of the start
    # as a second adapter, "ref", which save_pretrained would write beside it as final_model/ref/.
    adapters = getattr(model, "peft_config", None) or {}
    trained = {"selected_adapters": ["default"]} if len(adapters) > 1 and "default" in adapters else {}
    model.save_pretrained(final, safe_serialization=True, **trained)
    tok.save_pretrained(final)
    history = metrics.read()
    rewards = [r["reward"] for r in history if isinstance(r.get("reward"), (int, float))]
    summary = {
        "algo": cfg.algo, "role": cfg.role, "base_model": base, "steps": cfg.max_steps,
        "wall_seconds": round(time.time() - t0, 1),
        "reward_first": sum(rewards[:5]) / len(rewards[:5]) if rewards else None,
        "reward_last": sum(rewards[-5:]) / len(rewards[-5:]) if rewards else None,
        "final_model": str(final),
        "reward_control": cfg.reward_control,
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "dtype_rule": getattr(model, "memrl_dtype_reason", None),
        "shared_prefix": algorithm.shares_prefix(cfg),
        "oracle_inputs": oracle_inputs(cfg),
    }
    write_model_card(final, algo=cfg.algo, implementation=algorithm.implementation, role=cfg.role, base=base,
                     data=cfg.data.path, reward=algorithm.reward_description(cfg),
                     results={k: v for k, v in summary.items() if isinstance(v, (int, float))},
                     config_yaml=to_yaml(cfg))
    plot_curves(history, out / "curves.png", title=f"{cfg.algo} {cfg.role}")
    write_run_readme(out, summary)
    write_json(out / "summary.json", summary)
    return summary
