"""The answer modes, one registry: every layer asks here what a mode name means.

Each mode is one `AnswerMode` (`memrl.protocol.modes.base`) in its own file of this package: its prompt
template, its parser, what candidates="auto" means for it, its default reward preset, and the flags the code
needs (does an answer come out, does a frozen reader answer). The answer environment, the LLM answerer,
evaluation, training and the rewards look a name up with `get(name)`; none compares mode names.

Adding a mode: write `memrl/protocol/modes/<name>.py` defining one `AnswerMode`, and add one `register(...)`
line below. A test (or a plugin) may `register` its own mode at run time; `unregister` removes it again.

The setting is called `answer_mode` everywhere (`EvalConfig.answer_mode`, `AnswerEnvConfig.answer_mode`,
`LLMAnswerer.answer_mode`, `AnswerRequest.answer_mode`, `AnswerReward.answer_mode`).
"""

from __future__ import annotations

from typing import Any

from memrl.protocol.modes.base import (
    ANY_SOURCE,
    CANDIDATE_SOURCES,
    AnswerMode,
    RewardPreset,
    answer_only,
    ids_then_answer,
)
from memrl.protocol.modes.compact import COMPACT
from memrl.protocol.modes.memory_r1 import MEMORY_R1
from memrl.protocol.modes.memory_t1 import MEMORY_T1
from memrl.protocol.modes.picker import PICKER
from memrl.protocol.modes.plain import PLAIN
from memrl.protocol.modes.select import SELECT
from memrl.protocol.modes.short import SHORT
from memrl.protocol.parsing import AnswerParse
from memrl.protocol.steps import DEFAULT_ANSWER_MODE, AnswerRequest

_REGISTRY: dict[str, AnswerMode] = {}


def register(mode: AnswerMode, *, replace: bool = False) -> AnswerMode:
    """Make `mode` known by its name (a second mode of the same name is refused unless `replace`)."""
    if not isinstance(mode, AnswerMode):
        raise TypeError(f"register() takes an AnswerMode, got {type(mode).__name__}")
    if mode.name in _REGISTRY and not replace and _REGISTRY[mode.name] is not mode:
        raise ValueError(f"answer mode {mode.name!r} is already registered")
    _REGISTRY[mode.name] = mode
    return mode


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def names(*, prompted: bool = False) -> list[str]:
    """Registered mode names, in registration order (`prompted`: only modes with a prompt of their own, the ones
    the answer environment and evaluation can render)."""
    return [n for n, m in _REGISTRY.items() if m.prompted or not prompted]


def get(name: str | AnswerMode, *, prompted: bool = False) -> AnswerMode:
    """The mode called `name` (an `AnswerMode` is returned as is). ValueError naming the known modes otherwise."""
    if isinstance(name, AnswerMode):
        mode = name
    else:
        mode = _REGISTRY.get(str(name))
        if mode is None:
            raise ValueError(f"unknown answer mode {name!r}; choose one of {names(prompted=prompted)}")
    if prompted and not mode.prompted:
        raise ValueError(f"answer mode {mode.name!r} has no prompt (it parses and scores completions only); "
                         f"choose one of {names(prompted=True)}")
    return mode


# ---- what every caller does with a mode ---------------------------------------------------------------------
def parse_answer_output(text: Any, mode: str | AnswerMode = "memory_r1") -> AnswerParse:
    """Parse an answer-agent / picker completion in `mode`. Never raises on model output; an unknown mode is a
    programming error and raises ValueError."""
    return get(mode).parse(text)


def render_answer_prompt(request: AnswerRequest, mode: str | AnswerMode | None = None) -> list[dict[str, str]]:
    """Chat messages for a request in `mode` (default: the request's `answer_mode`)."""
    return get(mode or request.answer_mode, prompted=True).render(request)


def scored_answer(parse: Any, mode: str | AnswerMode, extraction: str = "lenient") -> tuple[str | None, str | None]:
    """The answer evaluation scores for one parse in `mode`, and the rule that found it (a picker: none; select:
    the reader's answer, never lenient: the reader, not the model, answers)."""
    return get(mode).scored_answer(parse, extraction)


# ---- the registry: one line per mode --------------------------------------------------------------------------
register(MEMORY_R1)
register(COMPACT)
register(PICKER)
register(SELECT)
register(MEMORY_T1)
register(SHORT)
register(PLAIN)

DEFAULT = get(DEFAULT_ANSWER_MODE)

__all__ = [
    "ANY_SOURCE", "CANDIDATE_SOURCES", "COMPACT", "DEFAULT", "MEMORY_R1", "MEMORY_T1", "PICKER", "PLAIN", "SELECT",
    "SHORT", "AnswerMode", "RewardPreset", "answer_only", "get", "ids_then_answer", "names", "parse_answer_output",
    "register", "render_answer_prompt", "scored_answer", "unregister",
]
