"""Training schedules built from `memrl.train.trainer.train`: Context-Picker's two stages, Memory-R1's
alternation, and a joint loop.

- `run_two_stage(cfg)` (Context-Picker, arXiv 2512.14465): the picker is trained recall-first (stage I, relaxed
  redundancy margin `schedule.stage1_margin`), then precision-first (stage II, tight `stage2_margin`) from
  stage I's final model, on the same data. Stage I ends at `schedule.switch_step` (0: half of `max_steps`),
  or earlier when the logged reward plateaus for `plateau_patience` logged steps (GRPO; the trainer's
  `callbacks` hook). Stage II runs the remaining steps. Output: <out>/stage1, <out>/stage2.
- `run_alternating(cfg_manager, cfg_answer, rounds)` (Memory-R1, arXiv 2508.19828): round r trains the manager
  with the answer agent frozen (its QA probes are answered by the current answer model when it is an LLM,
  else by the BM25 heuristic), then trains the answer agent on banks built by the current manager. Each
  round is a fresh run initialised from the previous round's model: new optimizer, new LR schedule.
  Output: <manager out>/round<r>, <answer out>/round<r>.
- `run_joint(cfg_manager, cfg_answer)`: both policies learn in one loop. Each policy is ONE continuous
  training run (one optimizer state, one data order, one step counter up to its `max_steps`) that is paused
  every `chunk` steps so that the other can take its next `chunk` steps against the partner's latest
  weights; a pause is a checkpoint and the continuation an exact resume. With chunk = 1 the two policies
  alternate single optimizer steps. Output: <manager out>, <answer out> (one run directory each).

Every schedule writes `summary.json` (per stage / round / chunk summaries) next to its run directories and,
with `resume=true`, skips the parts whose summary already exists and resumes the part that was cut.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memrl.config import ConfigError
from memrl.data.io import write_json
from memrl.protocol import modes
from memrl.train import algorithms
from memrl.train.algorithms.base import listed
from memrl.train.run import MetricsLog, resuming
from memrl.train.trainer import train

if TYPE_CHECKING:
    from memrl.train.config import TrainConfig


# ---------------------------------------------------------------------------------------------------------
# Plateau detection (pure logic) and its TrainerCallback
class Plateau:
    """True once the smoothed value has not beaten its best (by `min_delta`) for `patience` updates.

    Smoothing: the mean of the last `window` values (per-step GRPO rewards are noisy)."""

    def __init__(self, patience: int, window: int = 5, min_delta: float = 0.0):
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        self.patience = patience
        self.window = max(1, window)
        self.min_delta = min_delta
        self.values: list[float] = []
        self.best: float | None = None
        self.since_best = 0

    def update(self, value: float) -> bool:
        self.values.append(float(value))
        recent = self.values[-self.window:]
        smooth = sum(recent) / len(recent)
        if self.best is None or smooth > self.best + self.min_delta:
            self.best, self.since_best = smooth, 0
        else:
            self.since_best += 1
        return self.since_best >= self.patience


def plateau_callback(patience: int, key: str = "reward", window: int = 5):
    """A transformers TrainerCallback that stops training (control.should_training_stop) on a plateau of the
    logged `key`; `.stopped_at` holds the global step it stopped at (None if it never fired)."""
    from transformers import TrainerCallback

    class PlateauStop(TrainerCallback):
        def __init__(self) -> None:
            self.plateau = Plateau(patience, window)
            self.stopped_at: int | None = None

        def on_log(self, args, state, control, logs=None, **kw):
            value = (logs or {}).get(key)
            if isinstance(value, (int, float)) and math.isfinite(value) and self.plateau.update(value):
                control.should_training_stop = True
                if self.stopped_at is None:
                    self.stopped_at = int(state.global_step)
            return control

    return PlateauStop()


def _train(cfg: TrainConfig, callbacks: list | None = None) -> dict[str, Any]:

    if callbacks:
        if "callbacks" not in inspect.signature(train).parameters:
            raise ConfigError("schedule.plateau_patience needs memrl.train.trainer.train(cfg, callbacks=[...]) to "
                              "pass TrainerCallbacks to TRL; use schedule.switch_step instead")
        return train(cfg, callbacks=callbacks)
    return train(cfg)


def _done(out: Path) -> dict[str, Any] | None:
    """The summary of a finished run directory, or None."""
    p = out / "summary.json"
    if p.exists():
        try:
            return json.loads(p.read_text())
        except json.JSONDecodeError:
            return None
    return None


def _last_step(out: Path) -> int:

    steps = [int(r["step"]) for r in MetricsLog(out / "metrics.jsonl", resume=True).read() if "step" in r]
    return max(steps) if steps else 0


def _resuming(cfg: TrainConfig) -> bool:
    return resuming(cfg.resume)


def _write_summary(out: Path, summary: dict[str, Any]) -> None:

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "summary.json", summary)


def _rl() -> list[str]:
    """The registered algorithms that learn from a reward (the schedules here are RL schedules)."""
    return [a.name for a in algorithms.registered() if a.rl]


# ---------------------------------------------------------------------------------------------------------
# Context-Picker: two stages
def run_two_stage(cfg: TrainConfig, progress: bool = True) -> dict[str, Any]:
    """Stage I (recall, margin `stage1_margin`) then stage II (precision, `stage2_margin`) from stage I's model."""
    sch = cfg.schedule
    if cfg.role != "answer" or modes.get(cfg.answer_env.answer_mode).answers:
        pickers = " | ".join(n for n in modes.names(prompted=True) if not modes.get(n).answers)
        raise ConfigError("schedule.kind=two_stage trains the Context-Picker: set role=answer and "
                         f"answer_env.answer_mode={pickers} (got role={cfg.role!r}, "
                         f"answer_env.answer_mode={cfg.answer_env.answer_mode!r})")
    algorithm = algorithms.get(cfg.algo)
    if not algorithm.rl:
        raise ConfigError(f"schedule.kind=two_stage is an RL schedule: algo must be {listed(_rl())}")
    if sch.plateau_patience and not algorithm.trainer_callbacks:
        takes = listed([a.name for a in algorithms.registered() if a.rl and a.trainer_callbacks])
        raise ConfigError(f"schedule.plateau_patience stops stage I through a TrainerCallback, which algo={cfg.algo} "
                          f"does not take (algo {takes} does); use schedule.switch_step with algo={cfg.algo}")
    out = Path(cfg.output_dir)
    stage1_steps = sch.switch_step or max(1, cfg.max_steps // 2)
    if not 0 < stage1_steps < cfg.max_steps:
        raise ConfigError(f"schedule.switch_step ({stage1_steps}) must be between 1 and max_steps - 1 "
                         f"({cfg.max_steps - 1})")
    resume = _resuming(cfg)

    def stage_cfg(k: int, margin: int, steps: int, init_from: str) -> TrainConfig:
        return dataclasses.replace(
            cfg, output_dir=str(out / f"stage{k}"), max_steps=steps, init_from=init_from,
            resume=cfg.resume if resume else "",
            answer_env=dataclasses.replace(cfg.answer_env, picker_margin=margin),
            schedule=dataclasses.replace(sch, kind="none"))

    s1_out = out / "stage1"
    s1 = _done(s1_out) if resume else None
    reason = "switch_step"
    if s1 is None:
        c1 = stage_cfg(1, sch.stage1_margin, stage1_steps, cfg.init_from)
        cb = plateau_callback(sch.plateau_patience) if sch.plateau_patience else None
        s1 = _train(c1, [cb] if cb else None)
        if cb is not None and cb.stopped_at is not None and cb.stopped_at < stage1_steps:
            reason = "plateau"
    elif _last_step(s1_out) < stage1_steps:
        reason = "plateau"
    switched_at = _last_step(s1_out) or stage1_steps
    c2 = stage_cfg(2, sch.stage2_margin, max(1, cfg.max_steps - switched_at), s1["final_model"])
    s2 = _train(c2)
    summary = {"schedule": "two_stage", "algo": cfg.algo, "switched_at": switched_at, "switch_reason": reason,
               "margins": [sch.stage1_margin, sch.stage2_margin], "stages": [s1, s2],
               "final_model": s2["final_model"], "reward_first": s1.get("reward_first"),
               "reward_last": s2.get("reward_last")}
    _write_summary(out, summary)
    return summary


# ---------------------------------------------------------------------------------------------------------
# Memory-R1: partners
def _spec_of(model_dir: str) -> str:
    return f"transformers:{model_dir}" if model_dir else ""


def _starting_model(cfg: TrainConfig) -> str:
    """The model a run starts from, as a partner: init_from, else a real model.path; "" for the offline tiny
    model built from scratch (an untrained tiny model is no answer agent: the heuristic stands in)."""
    return cfg.init_from or (cfg.model.path if cfg.model.path != "tiny" else "")


def _bank_env(cfg: TrainConfig, bank_manager: str):
    """cfg's answer environment with its banks built by `bank_manager` (a checkpoint spec; "" = the heuristic)."""
    return dataclasses.replace(cfg.answer_env, manager=bank_manager or "auto")


def _check_pair(cfg_manager: TrainConfig, cfg_answer: TrainConfig) -> None:
    if cfg_manager.role != "manager" or cfg_answer.role != "answer":
        raise ConfigError(f"alternation needs a manager config and an answer config, got roles "
                         f"{cfg_manager.role!r} and {cfg_answer.role!r}")
    for c in (cfg_manager, cfg_answer):
        if not algorithms.get(c.algo).rl:
            raise ConfigError(f"{c.role}: alternation trains with RL (algo {listed(_rl())}), got {c.algo}")
    if not modes.get(cfg_answer.answer_env.answer_mode).answers:
        answering = " | ".join(n for n in modes.names(prompted=True) if modes.get(n).answers)
        raise ConfigError(f"alternation needs an answer agent that answers (answer_env.answer_mode {answering}), "
                          f"not {cfg_answer.answer_env.answer_mode!r}")
    if os.path.abspath(cfg_manager.output_dir) == os.path.abspath(cfg_answer.output_dir):
        raise ConfigError("the manager and the answer agent need different output_dir")


def _common_root(cfg_manager: TrainConfig, cfg_answer: TrainConfig) -> Path:
    return Path(os.path.commonpath([os.path.abspath(cfg_manager.output_dir), os.path.abspath(cfg_answer.output_dir)]))


def run_alternating(cfg_manager: TrainConfig, cfg_answer: TrainConfig, rounds: int | None = None,
                    progress: bool = True) -> dict[str, Any]:
    """Memory-R1's alternation for `rounds` rounds (default cfg_manager.schedule.rounds); see the module doc."""
    _check_pair(cfg_manager, cfg_answer)
    rounds = rounds if rounds is not None else cfg_manager.schedule.rounds
    if rounds < 1:
        raise ConfigError(f"rounds must be >= 1, got {rounds}")
    m_root, a_root = Path(cfg_manager.output_dir), Path(cfg_answer.output_dir)
    manager_model, answer_model = cfg_manager.init_from, _starting_model(cfg_answer)
    resume = _resuming(cfg_manager)
    history = []
    for r in range(1, rounds + 1):
        m_out, a_out = m_root / f"round{r}", a_root / f"round{r}"
        probe = _spec_of(answer_model)
        m_sum = _done(m_out) if resume else None
        if m_sum is None:
            mc = dataclasses.replace(cfg_manager, probe_answerer=probe, output_dir=str(m_out),
                               init_from=manager_model, resume=cfg_manager.resume if resume else "",
                               answer_env=cfg_answer.answer_env, schedule=dataclasses.replace(cfg_manager.schedule,
                                                                                              kind="none"))
            m_sum = _train(mc)
        manager_model = m_sum["final_model"]
        a_sum = _done(a_out) if resume else None
        if a_sum is None:
            ac = dataclasses.replace(cfg_answer, answer_env=_bank_env(cfg_answer, _spec_of(manager_model)), output_dir=str(a_out),
                               init_from=answer_model, resume=cfg_answer.resume if resume else "",
                               schedule=dataclasses.replace(cfg_answer.schedule, kind="none"))
            a_sum = _train(ac)
        answer_model = a_sum["final_model"]
        history.append({"round": r, "manager": m_sum, "answer": a_sum, "probe_answerer": probe or "bm25",
                        "bank_manager": _spec_of(manager_model)})
    summary = {"schedule": "alternate", "rounds": history, "manager_final": manager_model,
               "answer_final": answer_model}
    _write_summary(_common_root(cfg_manager, cfg_answer), summary)
    return summary


def run_joint(cfg_manager: TrainConfig, cfg_answer: TrainConfig, chunk: int | None = None,
              progress: bool = True) -> dict[str, Any]:
    """Both policies in one loop, `chunk` optimizer steps at a time (default `schedule.switch_step`, else
    max_steps / schedule.rounds); see the module doc for what is continuous and what is refreshed."""
    _check_pair(cfg_manager, cfg_answer)
    for c in (cfg_manager, cfg_answer):
        if not algorithms.get(c.algo).checkpoints_last_step:
            ok = listed([a.name for a in algorithms.registered() if a.rl and a.checkpoints_last_step])
            raise ConfigError(f"{c.role}: schedule.kind=joint pauses and resumes runs at chunk boundaries, from a "
                              f"checkpoint at each chunk's last step; it supports algo={ok} ({c.algo} does not "
                              f"checkpoint its last step), got {c.algo}")
    root = _common_root(cfg_manager, cfg_answer)
    if root in (Path(os.path.abspath(cfg_manager.output_dir)), Path(os.path.abspath(cfg_answer.output_dir))):
        raise ConfigError("schedule.kind=joint: put the two run directories side by side (e.g. <out>/manager and "
                         "<out>/answer); one inside the other would mix their summaries")
    sch = cfg_manager.schedule
    steps = max(cfg_manager.max_steps, cfg_answer.max_steps)
    chunk = chunk or sch.switch_step or max(1, math.ceil(steps / max(1, sch.rounds)))
    resume = _resuming(cfg_manager)
    manager_model = answer_model = ""
    history = []
    for k in range(math.ceil(steps / chunk)):
        target = (k + 1) * chunk
        entry: dict[str, Any] = {"chunk": k + 1}
        # The manager's next chunk, its probes answered by the answer agent's latest weights.
        if target - chunk < cfg_manager.max_steps:
            mc = dataclasses.replace(cfg_manager, probe_answerer=_spec_of(answer_model or _starting_model(cfg_answer)),
                               max_steps=min(target, cfg_manager.max_steps), save_steps=chunk,
                               resume="true" if (k > 0 or resume) else "",
                               answer_env=cfg_answer.answer_env, schedule=dataclasses.replace(sch, kind="none"))
            entry["manager"] = _train(mc)
            manager_model = entry["manager"]["final_model"]
        # The answer agent's next chunk, on banks built by the manager's latest weights.
        if target - chunk < cfg_answer.max_steps:
            ac = dataclasses.replace(cfg_answer, answer_env=_bank_env(cfg_answer, _spec_of(manager_model or _starting_model(cfg_manager))),
                               max_steps=min(target, cfg_answer.max_steps), save_steps=chunk,
                               resume="true" if (k > 0 or resume) else "",
                               schedule=dataclasses.replace(cfg_answer.schedule, kind="none"))
            entry["answer"] = _train(ac)
            answer_model = entry["answer"]["final_model"]
        history.append(entry)
    summary = {"schedule": "joint", "chunk": chunk, "chunks": history, "manager_final": manager_model,
               "answer_final": answer_model,
               "manager_steps": _last_step(Path(cfg_manager.output_dir)),
               "answer_steps": _last_step(Path(cfg_answer.output_dir))}
    _write_summary(root, summary)
    return summary


__all__ = ["Plateau", "plateau_callback", "run_alternating", "run_joint", "run_two_stage"]
