"""`AnswerEnvConfig`: every knob of the answer / picker environment (mode, candidates, reward weights)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from memrl.config import renamed_keys
from memrl.envs.manager.config import ManagerEnvConfig, as_manager_config
from memrl.protocol import modes
from memrl.protocol.modes import CANDIDATE_SOURCES
from memrl.protocol.steps import DEFAULT_ANSWER_MODE


@dataclass
class AnswerEnvConfig:
    """Answer / picker environment and dataset export."""

    # Keys of earlier configs, read as their new names (`answer_env.mode: picker` still works).
    RENAMED_KEYS: ClassVar[dict[str, str]] = {"mode": "answer_mode"}

    answer_mode: str = DEFAULT_ANSWER_MODE  # a prompted mode of memrl.protocol.modes: memory_r1 | compact | picker |
    #                                         select | memory_t1 | short
    candidates: str = "auto"  # "memories" | "turns" | "sessions" | "auto" (the mode's own: memory_t1 sessions,
    #                           picker turns, the others memories)
    k_per_speaker: int = 30  # memories / turns retrieved per speaker (Memory-R1: 30 + 30)
    top_k_sessions: int = 10  # Memory-T1's BM25 top-k over time-filtered sessions
    time_filter: bool = True  # Memory-T1: drop sessions outside the question's time range (all kept if none remain)
    include_gold: bool = False  # add gold evidence the retrieval missed (training data)
    shuffle: bool = False  # shuffle candidate order (Memory-T1 training shuffles sessions)
    budget: int = 0  # max candidates (0 = no cap); gold candidates are kept first when cutting
    order: str = "bank"  # memory candidates in "bank" order (Memory-R1) or by "relevance" (BM25 score, best first)
    manager: str = "add_only"  # baseline building banks for memory candidates; "auto" (ORACLE): gold_ops where the
    #                           data has gold ops, else add_only
    bank: ManagerEnvConfig = field(default_factory=lambda: ManagerEnvConfig(probes="none"))
    metric: str = ""  # accuracy metric ("" = the mode's preset: em for memory_r1/compact, timedial for memory_t1, ...)
    weights: dict[str, float] = field(default_factory=dict)  # reward weights ({} = the mode's preset)
    picker_margin: int = 2  # Context-Picker redundancy margin (stage I relaxed, stage II tight)
    redundancy_coef: float = 0.1  # penalty per selected id beyond the minimal set, inside the margin
    t1_unknown_defaults: bool = False  # reproduce Memory-T1's 2020-01-01 / 2025-08-01 for unknown range ends
    skip_categories: list[str] = field(default_factory=list)  # question categories (names or ids) left out
    seed: int = 0  # candidate shuffling
    max_action_chars: int = 8192
    max_observation_chars: int = 1_000_000

    def validate(self) -> None:
        if self.answer_mode not in modes.names(prompted=True):
            raise ValueError(f"AnswerEnvConfig.answer_mode: {self.answer_mode!r} is not one of "
                             f"{modes.names(prompted=True)}")
        if self.candidates not in CANDIDATE_SOURCES:
            raise ValueError(f"AnswerEnvConfig.candidates: {self.candidates!r} is not one of {list(CANDIDATE_SOURCES)}")
        try:
            modes.get(self.answer_mode).check_candidates(self.candidates)
        except ValueError as e:
            raise ValueError(f"AnswerEnvConfig: {e}") from None
        if self.order not in ("bank", "relevance"):
            raise ValueError(f"AnswerEnvConfig.order: {self.order!r} is not one of ['bank', 'relevance']")
        for name in ("k_per_speaker", "top_k_sessions", "budget", "picker_margin"):
            if getattr(self, name) < 0:
                raise ValueError(f"AnswerEnvConfig.{name} must be >= 0, got {getattr(self, name)}")
        self.bank.validate()

    def candidate_source(self) -> str:
        return modes.get(self.answer_mode).candidate_source(self.candidates)


def as_answer_config(config: AnswerEnvConfig | dict | None) -> AnswerEnvConfig:
    if config is None:
        config = AnswerEnvConfig()
    elif isinstance(config, dict):
        d = renamed_keys(AnswerEnvConfig, dict(config))
        if isinstance(d.get("bank"), dict):
            d["bank"] = as_manager_config(d["bank"])
        config = AnswerEnvConfig(**d)
    elif not isinstance(config, AnswerEnvConfig):
        from omegaconf import OmegaConf

        return as_answer_config(OmegaConf.to_container(config, resolve=True))  # type: ignore[arg-type]
    config.validate()
    return config
