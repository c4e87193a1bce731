"""`SynthConfig`: every knob of `memrl synth`, one line each, grouped by concern.

A plain dataclass of OmegaConf-compatible fields ([min, max] ranges are lists, not tuples) so that
`memrl.config.load_config(SynthConfig, file, overrides)` can build it; `validate()` names the bad knob.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

# Defaults of the question mix; the category ids are documented in questions.py.
DEFAULT_QUESTION_MIX = {
    "single_hop": 0.2, "multi_hop": 0.1, "temporal": 0.2, "knowledge_update": 0.15, "history": 0.1,
    "adversarial": 0.1, "conflict_resolution": 0.15,
}
# Fields that do not change what is generated (where and how it runs): left out of the shard fingerprint.
RUNTIME_FIELDS = ("out", "executor", "num_workers", "ray_address", "overwrite", "shard_size")


# Question categories and their LoCoMo-style ids (the questions module generates them; the config's
# question_mix names them).
CATEGORY_IDS = {"multi_hop": 1, "temporal": 2, "single_hop": 4, "adversarial": 5, "knowledge_update": 6,
                "history": 7, "conflict_resolution": 8}
CATEGORIES = list(CATEGORY_IDS)

# A sanity bound, not a capacity limit: 1e9 conversations would be ~90 TB of JSONL and a task list built in silence.
MAX_CONVERSATIONS = 10_000_000


@dataclass
class SynthConfig:
    # ---- output and scale --------------------------------------------------------------------------------
    out: str = "data/synth"  # output directory (shards/, hf/, {train,validation,test}.jsonl, README.md, stats.json)
    num_conversations: int = 200  # conversations to synthesize
    seed: int = 0  # conversation i is a pure function of (seed, i, content knobs)
    split_fractions: dict[str, float] = field(
        default_factory=lambda: {"train": 0.8, "validation": 0.1, "test": 0.1})  # by conversation
    # ---- timeline ------------------------------------------------------------------------------------------
    speakers: int = 2  # speakers per conversation (LoCoMo has 2)
    sessions_per_conversation: list[int] = field(default_factory=lambda: [10, 20])  # [min, max]
    turns_per_session: list[int] = field(default_factory=lambda: [16, 24])  # [min, max]
    session_gap_days: list[int] = field(default_factory=lambda: [2, 21])  # [min, max] days between sessions
    first_session_dates: list[str] = field(
        default_factory=lambda: ["2022-01-01", "2024-06-30"])  # [earliest, latest] ISO date of session 1
    # ---- world -------------------------------------------------------------------------------------------
    facts_per_speaker: list[int] = field(default_factory=lambda: [10, 14])  # attribute facts (city, job, pets...)
    events_per_speaker: list[int] = field(default_factory=lambda: [4, 9])  # dated past events
    plans_per_speaker: list[int] = field(default_factory=lambda: [1, 3])  # dated future plans
    # Per-fact probabilities of each lifecycle step (world.py: _lifecycle).
    repeat_rate: float = 0.5  # the fact is mentioned again (gold NOOP on the entry)
    refine_rate: float = 0.3  # a detail is added later: neighbourhood, workplace, breed (UPDATE)
    change_rate: float = 0.35  # the value changes: a move, a new job, a new favourite (UPDATE)
    correct_rate: float = 0.15  # the speaker misspeaks and corrects it soon after (UPDATE)
    retract_rate: float = 0.15  # the fact ends or is retracted: quit, gave up, cancelled (DELETE)
    distractor_rate: float = 0.3  # share of non-fact turns that talk about third parties' similar facts
    relative_time_rate: float = 0.8  # share of dates said relatively ("last Tuesday") rather than absolutely
    # ---- questions -----------------------------------------------------------------------------------------
    questions_per_conversation: int = 40  # target; fewer when a category has no candidates
    question_mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_QUESTION_MIX))  # sums to 1
    mid_conversation_question_rate: float = 0.2  # share of questions asked between sessions, not at the end
    # ---- optional paraphrasing -----------------------------------------------------------------------------
    paraphrase: str | None = None  # generation backend spec ("transformers:PATH"); None = templates only
    paraphrase_batch_size: int = 16  # utterances per generate() call when paraphrasing
    # ---- execution -----------------------------------------------------------------------------------------
    executor: str = "local"  # "local" or "ray" (memrl.dist); the output is identical
    num_workers: int = 1  # parallel shards with executor=ray
    ray_address: str | None = None  # an existing Ray cluster; None starts a local one
    shard_size: int = 50  # conversations per shard file (the unit of resume)
    overwrite: bool = False  # allow replacing shards made with a different config in `out`

    def validate(self) -> SynthConfig:
        """Raise ValueError naming the first invalid knob."""
        for name in ("num_conversations", "seed", "questions_per_conversation", "paraphrase_batch_size"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("num_conversations", "speakers", "num_workers", "shard_size", "paraphrase_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_conversations > MAX_CONVERSATIONS:
            raise ValueError(f"num_conversations must be <= {MAX_CONVERSATIONS:,} (about 90 KB of JSONL each, measured), got "
                             f"{self.num_conversations:,}; synthesize in several output directories instead")
        if self.speakers > 6:
            raise ValueError(f"speakers must be <= 6, got {self.speakers}")
        for name, lowest in (("sessions_per_conversation", 1), ("turns_per_session", 1), ("session_gap_days", 1),
                             ("facts_per_speaker", 0), ("events_per_speaker", 0), ("plans_per_speaker", 0)):
            value = list(getattr(self, name))
            if len(value) != 2:
                raise ValueError(f"{name} must be [min, max], got {value}")
            if value[0] < lowest or value[1] < value[0]:
                raise ValueError(f"{name} must be [min, max] with {lowest} <= min <= max, got {value}")
        if self.facts_per_speaker[1] > 20:
            raise ValueError(f"facts_per_speaker max must be <= 20 (the attribute catalog), got {self.facts_per_speaker}")
        if self.plans_per_speaker[1] > 8:
            raise ValueError(f"plans_per_speaker max must be <= 8, got {self.plans_per_speaker}")
        for name in ("repeat_rate", "refine_rate", "change_rate", "correct_rate", "retract_rate", "distractor_rate",
                     "relative_time_rate", "mid_conversation_question_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        _check_distribution("question_mix", self.question_mix, CATEGORIES)
        _check_distribution("split_fractions", self.split_fractions, ["train", "validation", "test"])
        try:
            lo, hi = (dt.date.fromisoformat(d) for d in self.first_session_dates)
        except (TypeError, ValueError):
            raise ValueError(f"first_session_dates must be two ISO dates, got {self.first_session_dates}") from None
        if len(self.first_session_dates) != 2 or hi < lo:
            raise ValueError(f"first_session_dates must be [earliest, latest], got {self.first_session_dates}")
        if self.executor not in ("local", "ray"):
            raise ValueError(f"executor must be 'local' or 'ray', got {self.executor!r}")
        return self

    def content(self) -> dict[str, Any]:
        """The knobs that determine the generated data (what the shard fingerprint covers)."""
        return {k: v for k, v in asdict(self).items() if k not in RUNTIME_FIELDS}


def _check_distribution(name: str, mix: dict[str, float], allowed: list[str]) -> None:
    for key, weight in mix.items():
        if key not in allowed:
            raise ValueError(f"{name} has unknown key {key!r}; allowed: {', '.join(allowed)}")
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"{name}.{key} must be in [0, 1], got {weight}")
    total = sum(mix.values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"{name} must sum to 1, got {total:.6f}")
