"""`AnswerMode`: everything one answer mode is, in one object; `RewardPreset`: its default reward.

An answer mode is the contract between the answer environment, an answer policy, evaluation and the rewards:
which prompt the policy sees, how its completion is parsed, which candidates "auto" means, which reward scores
it, and the few facts the code used to derive from the mode's name (does the completion give an answer? does a
frozen reader answer from the selected id?). Each mode is one `AnswerMode` in its own file of this package,
registered in `memrl.protocol.modes` (the registry); nothing outside the registry compares mode names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memrl.protocol.lenient import lenient_answer
from memrl.protocol.parsing import AnswerParse

if TYPE_CHECKING:
    from memrl.protocol.prompts import PromptTemplate
    from memrl.protocol.steps import AnswerRequest

# Where candidates come from: a bank built by a manager, the dialogue's turns, or whole sessions; "auto" is the
# first source the mode lists (`AnswerMode.candidates`).
CANDIDATE_SOURCES = ("auto", "memories", "turns", "sessions")
ANY_SOURCE = ("memories", "turns", "sessions")


@dataclass(frozen=True)
class RewardPreset:
    """A mode's default reward: the weights of its composite's terms, the value of unparsable output, the
    accuracy metric (`memrl.rewards.accuracy.METRICS`), which reward function scores it (`kind`, one of
    `memrl.rewards.trl_adapters.REWARD_KINDS`: "answer", "accuracy", "coverage", "reader", "temporal") and the
    name the reward has in training logs ("" = the mode's name)."""

    weights: dict[str, float] = field(default_factory=dict)
    parse_failure: float = -1.0
    metric: str | None = None
    kind: str = "accuracy"
    name: str = ""


@dataclass(frozen=True)
class AnswerMode:
    """One answer mode. `fields(request)` gives `prompt`'s template fields; `parser(text)` reads a non-empty
    completion; `target(parse)` writes a parse back in the completion format (SFT targets)."""

    name: str
    prompt: PromptTemplate | None  # None: a parse-and-reward mode for datasets that bring their own prompt
    fields: Callable[[AnswerRequest], dict[str, Any]] | None
    parser: Callable[[str], AnswerParse]
    target: Callable[[AnswerParse], str]
    reward: RewardPreset
    candidates: tuple[str, ...] = ANY_SOURCE  # sources it can read; the first is what candidates="auto" means
    answers: bool = True  # an answer comes out (the policy's, or the frozen reader's); False: ids only (a picker)
    reader: bool = False  # a frozen extractive reader answers from the first selected id (the policy picks)
    official_answer: Callable[[str], str] | None = None  # a second reading of the raw completion, kept beside
    #                                                       memrl's parse (the source paper's own parser)
    summary: str = ""  # one line: what the policy writes and how it is scored

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(f"answer mode name {self.name!r}: use letters, digits and underscores")
        if (self.prompt is None) != (self.fields is None):
            raise ValueError(f"answer mode {self.name!r}: give both prompt and fields, or neither")
        if not self.candidates or any(s not in ANY_SOURCE for s in self.candidates):
            raise ValueError(f"answer mode {self.name!r}: candidates {self.candidates!r} must be drawn from "
                             f"{list(ANY_SOURCE)}")

    # ---- prompt --------------------------------------------------------------------------------------------
    @property
    def prompted(self) -> bool:
        return self.prompt is not None

    @property
    def prompt_id(self) -> str | None:
        """"<template>@<version>", what results record."""
        return f"{self.prompt.name}@{self.prompt.version}" if self.prompt is not None else None

    def render(self, request: AnswerRequest) -> list[dict[str, str]]:
        """The chat messages of a request in this mode."""
        if self.prompt is None or self.fields is None:
            raise ValueError(f"answer mode {self.name!r} has no prompt (it parses and scores completions only)")
        return self.prompt.render(**self.fields(request))

    # ---- completion ----------------------------------------------------------------------------------------
    def parse(self, text: Any) -> AnswerParse:
        """Parse a completion. Never raises on model output; empty output is a format failure in every mode."""
        if not isinstance(text, str):
            text = "" if text is None else str(text)
        if not text.strip():
            return AnswerParse(ok=False, error="empty output")
        return self.parser(text)

    @property
    def lenient(self) -> bool:
        """Evaluation may extract an answer from output that ignored the format: only where the policy itself
        writes the answer (a picker writes none; with a reader, the reader answers)."""
        return self.answers and not self.reader

    def scored_answer(self, parse: Any, extraction: str = "lenient") -> tuple[str | None, str | None]:
        """(answer, rule) evaluation scores for one parse (`memrl.protocol.lenient` gives the rules)."""
        ok = bool(getattr(parse, "ok", False))
        answer = getattr(parse, "answer", None)
        if not self.lenient or extraction == "strict":
            return (answer, "format") if ok and answer is not None else (None, None)
        return lenient_answer(getattr(parse, "raw", None), ok, answer)

    # ---- candidates ----------------------------------------------------------------------------------------
    def candidate_source(self, requested: str) -> str:
        """What candidates=`requested` means for this mode ("auto": the mode's first source)."""
        return self.candidates[0] if requested == "auto" else requested

    def check_candidates(self, requested: str) -> None:
        """ValueError unless `requested` is "auto" or a source this mode reads."""
        if requested not in CANDIDATE_SOURCES:
            raise ValueError(f"candidates: {requested!r} is not one of {list(CANDIDATE_SOURCES)}")
        if requested != "auto" and requested not in self.candidates:
            allowed = " or ".join(repr(s) for s in (*self.candidates, "auto"))
            raise ValueError(f"answer_mode {self.name!r} selects {' or '.join(self.candidates)}: candidates must be "
                             f"{allowed}")

    @property
    def reward_name(self) -> str:
        return self.reward.name or self.name


def ids_then_answer(parse: AnswerParse) -> str:
    """"[1] [4]\\n**Answer:** x": the selected ids, then the answer after the marker."""
    ids = " ".join(f"[{i}]" for i in (parse.selected_ids or []))
    answer = parse.answer or ""
    return f"{ids}\n**Answer:** {answer}" if ids else f"**Answer:** {answer}"


def answer_only(parse: AnswerParse) -> str:
    return parse.answer or ""
