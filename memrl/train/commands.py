"""`memrl train`: run a training recipe (SFT / GRPO / PPO, or a schedule of them).

    memrl train --config configs/train/grpo_answer_tiny.yaml [key=value ...]
    memrl train --config configs/train/grpo_answer_tiny.yaml resume=true          # continue after a crash
    memrl train --config configs/train/alternate_tiny.yaml answer.init_from=runs/train/sft_answer_tiny/final_model
    memrl train --config configs/train/alternate_tiny.yaml --answer-config configs/train/grpo_answer_tiny.yaml
    memrl train --config configs/train/grpo_manager_qwen2.5-7b.yaml --dry-run model.path=... grpo.use_vllm=false

Keys are TrainConfig fields (memrl/train/config.py; the sft: / grpo: / ppo: sections in memrl/train/algorithms/);
a misspelt key exits with code 2 and names it.
`schedule.kind` picks what runs: none (one run), two_stage (Context-Picker), alternate (Memory-R1), joint.
Alternate / joint train a manager (this recipe) and an answer agent: `--answer-config FILE` is its recipe,
otherwise it is this recipe with role=answer; `answer.KEY=VALUE` overrides go to it. Their run directories
are <output_dir>/manager and <output_dir>/answer.
`--dry-run` builds the datasets, the model and the trainer objects, prints what it built, and trains nothing
(it writes only to a temporary directory).
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memrl.config import ConfigError, load_config
from memrl.locks import hold_directory
from memrl.models import resolve_model
from memrl.train import schedules
from memrl.train.builder import build_trainer
from memrl.train.config import TrainConfig
from memrl.train.guards import check_recipe
from memrl.train.run import prepare_resume, resuming
from memrl.train.trainer import train

if TYPE_CHECKING:
    from memrl.train.config import TrainConfig


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("train", help="SFT / GRPO / PPO training from a recipe",
                                   description=__doc__.split("\n\n")[0],
                                   epilog=__doc__.split("\n\n", 1)[1],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="recipe YAML (configs/train/*.yaml)")
    parser.add_argument("--answer-config", help="alternate / joint: the answer agent's recipe YAML")
    parser.add_argument("--dry-run", action="store_true", help="build datasets and trainers, do not train")
    parser.add_argument("overrides", nargs="*", help="key=value overrides (answer.key=value for the answer agent)")
    parser.set_defaults(func=main)
    return parser


# ---------------------------------------------------------------------------------------------------------
def load_recipe(config: str, overrides: Sequence[str] = (), answer_config: str | None = None
                ) -> tuple[TrainConfig, TrainConfig | None]:
    """(config, answer config or None). The answer config exists for schedule.kind alternate / joint."""

    mine = [o for o in overrides if not o.startswith("answer.")]
    theirs = [o[len("answer."):] for o in overrides if o.startswith("answer.")]
    cfg = load_config(TrainConfig, config, mine)
    check_recipe(cfg)  # report_to loggers, trl.* knobs, PPO-ignored settings: checked before any work
    if cfg.schedule.kind not in ("alternate", "joint"):
        if theirs or answer_config:
            raise ConfigError(f"answer.* overrides and --answer-config apply to schedule.kind alternate / joint, "
                              f"not {cfg.schedule.kind!r}")
        return cfg, None
    if cfg.role != "manager":
        raise ConfigError(f"schedule.kind={cfg.schedule.kind}: the recipe is the manager's (role=manager), got "
                          f"role={cfg.role!r}; the answer agent's recipe goes in --answer-config")
    root = Path(cfg.output_dir)
    if answer_config:
        answer = load_config(TrainConfig, answer_config, [f"output_dir={root / 'answer'}", *theirs])
    else:  # this recipe as the answer agent: same data, algorithm and budget, its own model
        answer = load_config(TrainConfig, config, [*mine, "role=answer", "init_from=''",
                                                   f"output_dir={root / 'answer'}", *theirs])
    if answer.role != "answer":
        raise ConfigError(f"--answer-config {answer_config}: role must be answer, got {answer.role!r}")
    check_recipe(answer)
    import dataclasses

    cfg = dataclasses.replace(cfg, output_dir=str(root / "manager"))
    if cfg.resume and not answer.resume:
        answer = dataclasses.replace(answer, resume=cfg.resume)
    return cfg, answer


def run_recipe(cfg: TrainConfig, answer: TrainConfig | None = None, progress: bool = True) -> dict[str, Any]:
    """Dispatch on schedule.kind (after preparing every run directory for resume, when resuming)."""
    for c in (cfg, answer):  # a registered model that is not prepared fails now, before any data is read
        if c is not None:
            resolve_model(c.init_from, "init_from") if c.init_from else resolve_model(c.model.path, "model.path")
    with contextlib.ExitStack() as held:  # one command per run directory (a second one is refused, naming our pid)
        for c in (cfg, answer):
            if c is not None:
                held.enter_context(hold_directory(c.output_dir, "memrl train"))
        return _run_schedule(cfg, answer, progress)


def _run_schedule(cfg: TrainConfig, answer: TrainConfig | None, progress: bool) -> dict[str, Any]:
    for c in (cfg, answer):
        if c is not None and resuming(c.resume):
            prepare_resume(c)
    kind = cfg.schedule.kind
    if kind == "none":

        return train(cfg, progress=progress)

    if kind == "two_stage":
        return schedules.run_two_stage(cfg, progress=progress)
    assert answer is not None
    if kind == "alternate":
        return schedules.run_alternating(cfg, answer, cfg.schedule.rounds, progress=progress)
    return schedules.run_joint(cfg, answer, progress=progress)


# ---------------------------------------------------------------------------------------------------------
# Dry run: everything `train` builds before its first step
def describe(trainer: Any) -> dict[str, Any]:
    model = getattr(trainer, "model", None) or getattr(trainer, "policy", None)
    params = list(model.parameters()) if model is not None else []
    ds = getattr(trainer, "train_dataset", None)
    rollouts = getattr(trainer, "rollouts", None)
    rows = len(ds) if ds is not None else len(getattr(rollouts, "rows", []) or [])
    return {
        "trainer": type(trainer).__name__,
        "model": type(model).__name__,
        "parameters": sum(p.numel() for p in params),
        "trainable_parameters": sum(p.numel() for p in params if p.requires_grad),
        "rows": rows,
        "reward_funcs": [getattr(f, "__name__", type(f).__name__) for f in getattr(trainer, "reward_funcs", [])],
        "rollout_func": type(getattr(trainer, "rollout_func", None)).__name__
        if getattr(trainer, "rollout_func", None) is not None else None,
        "learning_rate": _actor_lr(trainer),
    }


def _actor_lr(trainer: Any) -> float | None:
    """The policy's learning rate as the trainer will use it (TRL: its args; memrl PPO: the actor optimizer)."""
    opt = getattr(trainer, "opt_actor", None)
    if opt is not None:
        return float(opt.param_groups[0]["lr"])
    args = getattr(trainer, "args", None)
    return float(args.learning_rate) if args is not None else None


def dry_run(cfg: TrainConfig, answer: TrainConfig | None = None) -> dict[str, Any]:
    """Build every trainer the recipe would run (the first stage of a two-stage schedule; both policies of
    alternate / joint) in a temporary directory; return a description of each."""
    import dataclasses
    import tempfile

    out: dict[str, Any] = {"schedule": cfg.schedule.kind, "built": []}
    configs = [cfg] + ([answer] if answer is not None else [])
    for c in configs:
        if c.schedule.kind == "two_stage":
            c = dataclasses.replace(c, answer_env=dataclasses.replace(c.answer_env,
                                                                      picker_margin=c.schedule.stage1_margin))
        with tempfile.TemporaryDirectory(prefix="memrl-dry-run-") as tmp:
            trainer, _, _ = build_trainer(dataclasses.replace(c, resume=""), Path(tmp))
            out["built"].append({"algo": c.algo, "role": c.role, **describe(trainer)})
            del trainer
    return out


# ---------------------------------------------------------------------------------------------------------
def main(args: argparse.Namespace) -> int:
    # Checkpoint, run-directory and divergence refusals are MemrlErrors: memrl.cli prints them in one line.
    cfg, answer = load_recipe(args.config, args.overrides, args.answer_config)
    result = dry_run(cfg, answer) if args.dry_run else run_recipe(cfg, answer)
    print(json.dumps(result, indent=2, default=str))
    return 0
