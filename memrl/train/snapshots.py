"""GRPO snapshot rows of the memory-manager environment and their TRL reward.

GRPO compares the G samples of one prompt, so the samples must start from the same memory state:
`snapshot_dataset` drives a bank-building manager over conversations and exports one row per step (prompt,
bank JSON, the `ManagerStep` columns); `score_manager_completion` rebuilds a row's state (cached by
`snapshot_id`), applies one completion through the environment's own `apply_completion` and scores it;
`ManagerSnapshotReward` is that score with TRL's reward-function signature.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from memrl.data.schema import Conversation
from memrl.envs.manager.config import ManagerEnvConfig, as_manager_config
from memrl.envs.manager.episode import ManagerEpisode, apply_completion, drive_manager
from memrl.memory.bank import MemoryBank
from memrl.memory.index import TextIndex
from memrl.policies.baselines import AddOnlyManager, BM25Answerer, GoldOpsManager
from memrl.protocol.steps import Answerer, Manager, ManagerStep
from memrl.rewards.trl_adapters import completion_text


def snapshot_dataset(
    conversations: Sequence[Conversation],
    config: ManagerEnvConfig | dict | None = None,
    manager: Manager | None = None,
    *,
    every: int = 1,
    max_probes: int | None = None,
    seed: int = 0,
):
    """A `datasets.Dataset` of manager states: one row per `every`-th step of each conversation.

    The bank of each row is what `manager` (default: the gold-op replayer on conversations with gold ops,
    else add-only) built over the earlier steps. Columns: `prompt` (chat messages), `bank_json`, the step
    (`ManagerStep.to_row`: facts, memories, id_map, gold ops, probes ... as JSON strings), `snapshot_id`,
    `builder`. Feed rows to `score_manager_completion` (or `ManagerSnapshotReward` in TRL).
    """
    import datasets  # deferred: Arrow is only needed for dataset export

    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    cfg = as_manager_config(config)
    if max_probes is not None:
        cfg = ManagerEnvConfig(**{**asdict(cfg), "max_probes": int(max_probes)})
    rows: list[dict[str, Any]] = []

    def record(ep: ManagerEpisode, step: ManagerStep, builder_name: str) -> None:
        if step.index % every:
            return
        row = step.to_row()
        row["bank_json"] = json.dumps(ep.bank.to_dict(), ensure_ascii=False)
        row["builder"] = builder_name
        row["snapshot_id"] = f"{step.conversation_id}:{step.index}:{builder_name}:{seed}"
        rows.append(row)

    groups: dict[str, list[Conversation]] = {}
    builders: dict[str, Manager] = {}
    for conv in conversations:
        b = manager if manager is not None else (GoldOpsManager() if conv.gold_ops else AddOnlyManager())
        builders[b.name] = b
        groups.setdefault(b.name, []).append(conv)
    for name, convs in groups.items():
        drive_manager(convs, builders[name], cfg, score=False, seed=seed,
              before_apply=lambda ep, st, _n=name: record(ep, st, _n))
    rows.sort(key=lambda r: (r["conversation_id"], r["step_index"]))
    return datasets.Dataset.from_list(rows)


_SNAPSHOTS: OrderedDict[tuple[str, int], tuple[MemoryBank, TextIndex, ManagerStep]] = OrderedDict()
_SNAPSHOT_CACHE_SIZE = 512


def _snapshot_state(row: dict[str, Any]) -> tuple[MemoryBank, TextIndex, ManagerStep]:
    key = (str(row.get("snapshot_id", "")), len(row["bank_json"]))
    hit = _SNAPSHOTS.get(key)
    if hit is not None and key[0]:
        _SNAPSHOTS.move_to_end(key)
        return hit
    try:
        bank = MemoryBank.from_dict(json.loads(row["bank_json"]))
    except (ValueError, TypeError) as e:
        raise ValueError(f"snapshot {key[0] or '?'}: bad bank_json: {e}") from None
    state = (bank, TextIndex.from_bank(bank), ManagerStep.from_row(row))
    if key[0]:
        _SNAPSHOTS[key] = state
        if len(_SNAPSHOTS) > _SNAPSHOT_CACHE_SIZE:
            _SNAPSHOTS.popitem(last=False)
    return state


def rebuild_snapshot(row: dict[str, Any]) -> tuple[MemoryBank, TextIndex, ManagerStep]:
    """A fresh (bank, index, step) for a snapshot row; callers may mutate them."""
    bank, index, step = _snapshot_state(row)
    return bank.copy(), index.fork(), step


def score_manager_completion(
    completion_text: Any,
    row: dict[str, Any],
    config: ManagerEnvConfig | dict | None = None,
    answerer: Answerer | None = None,
) -> tuple[float, dict[str, float]]:
    """Reward (and breakdown) of one manager completion applied to a snapshot row's state.

    The parsed state of a row is cached by `snapshot_id`, so the G samples of a GRPO group pay for the
    JSON once; each call applies to a copy. No torch import on this path.
    """
    cfg = config if isinstance(config, ManagerEnvConfig) else as_manager_config(config)
    bank, index, step = rebuild_snapshot(row)
    outcome = apply_completion(bank, index, step, completion_text, cfg,
                               answerer if answerer is not None else default_answerer())
    return outcome.reward, outcome.breakdown


_ANSWERER: Answerer | None = None


def default_answerer() -> Answerer:
    """The frozen probe answerer of snapshot scoring when none is passed: BM25 extractive, built once."""
    global _ANSWERER
    if _ANSWERER is None:
        _ANSWERER = BM25Answerer()
    return _ANSWERER


class ManagerSnapshotReward:
    """TRL reward function over `snapshot_dataset` rows: `f(prompts, completions, **columns) -> rewards`."""

    def __init__(self, config: ManagerEnvConfig | dict | None = None, answerer: Answerer | None = None,
                 name: str = "manager_reward"):
        self.config = as_manager_config(config)
        self.answerer = answerer
        self.__name__ = name

    def __call__(self, prompts: Sequence[Any] | None = None, completions: Sequence[Any] | None = None,
                 **columns: Any) -> list[float | None]:
        completions = list(completions or [])
        n = len(completions)
        cols = {k: v for k, v in columns.items() if isinstance(v, (list, tuple)) and len(v) == n}
        out: list[float | None] = []
        sums: dict[str, list[float]] = {}
        for i, c in enumerate(completions):
            row = {k: v[i] for k, v in cols.items()}
            if "bank_json" not in row:
                out.append(None)
                continue
            reward, breakdown = score_manager_completion(completion_text(c), row, self.config, self.answerer)
            out.append(reward)
            for k, v in breakdown.items():
                sums.setdefault(k, []).append(v)
        log_metric = columns.get("log_metric")
        if callable(log_metric):
            for k, vs in sums.items():
                log_metric(f"{self.__name__}/{k}", sum(vs) / len(vs))
        return out
