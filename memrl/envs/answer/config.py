"""`AnswerEnvConfig`: every knob of the answer / picker environment (mode, candidates, reward weights)."""

from __future__ import annotations

from dataclasses import dataclass, field

from memrl.envs.manager.config import ManagerEnvConfig, as_manager_config
from memrl.protocol.steps import ANSWER_ENV_MODES

CANDIDATE_SOURCES = ("auto", "memories", "turns", "sessions")


@dataclass
class AnswerEnvConfig:
    """Answer / picker environment and dataset export."""

    mode: str = "compact"  # "memory_r1" | "compact" | "picker" | "select" | "memory_t1"
    candidates: str = "auto"  # "memories" | "turns" | "sessions" | "auto" (t1: sessions, picker: turns, else memories)
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
    metric: str = ""  # accuracy metric ("" = the mode's preset: em for memory_r1/compact, timedial for memory_t1)
    weights: dict[str, float] = field(default_factory=dict)  # reward weights ({} = the mode's preset)
    picker_margin: int = 2  # Context-Picker redundancy margin (stage I relaxed, stage II tight)
    redundancy_coef: float = 0.1  # penalty per selected id beyond the minimal set, inside the margin
    t1_unknown_defaults: bool = False  # reproduce Memory-T1's 2020-01-01 / 2025-08-01 for unknown range ends
    skip_categories: list[str] = field(default_factory=list)  # question categories (names or ids) left out
    seed: int = 0  # candidate shuffling
    max_action_chars: int = 8192
    max_observation_chars: int = 1_000_000

    def validate(self) -> None:
        if self.mode not in ANSWER_ENV_MODES:
            raise ValueError(f"AnswerEnvConfig.mode: {self.mode!r} is not one of {list(ANSWER_ENV_MODES)}")
        if self.candidates not in CANDIDATE_SOURCES:
            raise ValueError(f"AnswerEnvConfig.candidates: {self.candidates!r} is not one of {list(CANDIDATE_SOURCES)}")
        if self.mode == "memory_t1" and self.candidate_source() != "sessions":
            raise ValueError("AnswerEnvConfig: mode 'memory_t1' selects sessions (candidates must be 'sessions' or 'auto')")
        if self.order not in ("bank", "relevance"):
            raise ValueError(f"AnswerEnvConfig.order: {self.order!r} is not one of ['bank', 'relevance']")
        for name in ("k_per_speaker", "top_k_sessions", "budget", "picker_margin"):
            if getattr(self, name) < 0:
                raise ValueError(f"AnswerEnvConfig.{name} must be >= 0, got {getattr(self, name)}")
        self.bank.validate()

    def candidate_source(self) -> str:
        if self.candidates != "auto":
            return self.candidates
        return {"memory_t1": "sessions", "picker": "turns"}.get(self.mode, "memories")


def as_answer_config(config: AnswerEnvConfig | dict | None) -> AnswerEnvConfig:
    if config is None:
        config = AnswerEnvConfig()
    elif isinstance(config, dict):
        d = dict(config)
        if isinstance(d.get("bank"), dict):
            d["bank"] = as_manager_config(d["bank"])
        config = AnswerEnvConfig(**d)
    elif not isinstance(config, AnswerEnvConfig):
        from omegaconf import OmegaConf

        return as_answer_config(OmegaConf.to_container(config, resolve=True))  # type: ignore[arg-type]
    config.validate()
    return config
