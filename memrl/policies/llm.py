"""LLM policies over any generation backend: render prompt -> generate (batched) -> parse.

They share the interface of the heuristic baselines (memrl.policies.baselines), so evaluation and the
environments take either:
- `LLMManager.decide(steps) -> list[str]`: one completion per ManagerStep; the environment parses it.
- `LLMAnswerer.answer(requests) -> list[AnswerParse]` (and `LLMPicker`, its Context-Picker mode).
`generate(...)` returns the raw `Generation`s (n samples, token ids, logprobs) for RL code.

Prompts: the environment already renders each step / request in its configured style; a policy re-renders
only when its own style differs (e.g. a compact-prompt model on a Memory-R1-style environment).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memrl.models import resolve_model
from memrl.policies.baselines import ANSWER_BASELINES, MANAGER_BASELINES, make_baseline
from memrl.protocol import modes
from memrl.protocol.generation import SamplingParams
from memrl.protocol.parsing import AnswerParse
from memrl.protocol.reader import extract_answer
from memrl.protocol.steps import (
    DEFAULT_ANSWER_MODE,
    MANAGER_PROMPTS,
    ROLES,
    AnswerRequest,
    ManagerStep,
    render_manager_prompt,
)

if TYPE_CHECKING:  # backends import torch; keep `import memrl.policies.llm` light
    from memrl.policies.backends import Generation, GenerationBackend, SamplingParams


def _default_sampling(max_tokens: int) -> SamplingParams:

    return SamplingParams(temperature=0.0, max_tokens=max_tokens)


class LLMManager:
    """A memory manager on a backend. `prompt`: "compact" (tiny models) or "memory_r1" (Mem0 update prompt)."""

    kind = "manager"

    def __init__(self, backend: GenerationBackend, prompt: str = "compact", sampling: SamplingParams | None = None,
                 name: str = "llm_manager"):
        if prompt not in MANAGER_PROMPTS:
            raise ValueError(f"unknown manager prompt {prompt!r}; choose one of {list(MANAGER_PROMPTS)}")
        self.backend = backend
        self.prompt = prompt
        self.sampling = sampling if sampling is not None else _default_sampling(256)
        self.name = name

    def prompts(self, steps: Sequence[ManagerStep]) -> list[list[dict[str, str]]]:
        return [s.messages if s.messages and s.prompt_style == self.prompt else render_manager_prompt(s, self.prompt)
                for s in steps]

    def generate(self, steps: Sequence[ManagerStep], sampling: SamplingParams | None = None) -> list[list[Generation]]:
        if not steps:
            return []
        return self.backend.generate(self.prompts(steps), sampling or self.sampling)

    def decide(self, steps: Sequence[ManagerStep]) -> list[str]:
        return [gens[0].text for gens in self.generate(steps)]


class LLMAnswerer:
    """An answer agent on a backend, in an answer mode of `memrl.protocol.modes` (compact, memory_r1, memory_t1,
    picker, select, short, or a registered one): the mode renders the prompt and parses the completion."""

    kind = "answer"

    def __init__(self, backend: GenerationBackend, answer_mode: str = DEFAULT_ANSWER_MODE,
                 sampling: SamplingParams | None = None, name: str = "llm_answerer"):
        self.backend = backend
        self.answer_mode = modes.get(answer_mode, prompted=True).name
        self.sampling = sampling if sampling is not None else _default_sampling(128)
        self.name = name

    def prompts(self, requests: Sequence[AnswerRequest]) -> list[list[dict[str, str]]]:
        mode = modes.get(self.answer_mode)
        return [r.messages if r.messages and r.answer_mode == mode.name else mode.render(r) for r in requests]

    def generate(self, requests: Sequence[AnswerRequest],
                 sampling: SamplingParams | None = None) -> list[list[Generation]]:
        if not requests:
            return []
        return self.backend.generate(self.prompts(requests), sampling or self.sampling)

    def answer(self, requests: Sequence[AnswerRequest]) -> list[AnswerParse]:
        mode = modes.get(self.answer_mode)
        gens_all = self.generate(requests)
        parses = [mode.parse(gens[0].text) for gens in gens_all]
        for p, gens in zip(parses, gens_all):
            p.raw = gens[0].text  # evaluation keeps the raw completion and scores it leniently
        if mode.official_answer is not None:  # timedial_official reads the answer as Memory-T1's parse finds it
            for p, gens in zip(parses, gens_all):
                p.official_answer = mode.official_answer(gens[0].text)
        if mode.reader:  # the frozen reader answers from the first selected memory
            for r, p in zip(requests, parses):
                p.answer = read_selected(r, p.selected_ids) if p.ok else None
        return parses


def read_selected(request: AnswerRequest, selected_ids: Sequence[str]) -> str | None:
    """The extractive reader's answer from the first selected candidate; None if that id was not offered."""
    by_id = {c.id: c for c in request.candidates}
    c = by_id.get(str(selected_ids[0])) if selected_ids else None
    return extract_answer(request.question.question, c.text, c.owner) if c is not None else None


class LLMPicker(LLMAnswerer):
    """Context-Picker: a rationale and the minimal evidence subset (no answer)."""

    def __init__(self, backend: GenerationBackend, sampling: SamplingParams | None = None, name: str = "llm_picker"):
        super().__init__(backend, answer_mode=modes.PICKER.name, sampling=sampling, name=name)


def make_policy(spec: str, role: str, **kwargs: Any):
    """A policy from a name or a backend spec: a baseline name ("bm25", "rule_based", ...) or
    "transformers:PATH" / "vllm:PATH" / a checkpoint directory, as a manager or an answer agent (`role`: "manager" |
    "answer"; a Context-Picker is an answer agent in the picker answer mode).
    kwargs go to the LLM policy (prompt / answer_mode / sampling)."""

    if role not in ROLES:
        raise ValueError(f"role must be 'manager' or 'answer', got {role!r}")
    table = MANAGER_BASELINES if role == "manager" else ANSWER_BASELINES
    if spec in table:
        return make_baseline(spec)
    if spec in MANAGER_BASELINES or spec in ANSWER_BASELINES:
        raise ValueError(f"baseline {spec!r} is not a {role}")
    from memrl.policies.backends import ModelDirError, make_backend  # deferred: imports torch

    if ":" not in spec and not Path(resolve_model(spec)).expanduser().is_dir():  # a typo is not a hub download
        raise ModelDirError(f"{spec!r} is neither a {role} baseline ({', '.join(sorted(table))}), a prepared model "
                            f"(memrl models list) nor a model directory")
    backend = make_backend(spec)
    if role == "manager":
        return LLMManager(backend, **kwargs)
    return LLMAnswerer(backend, **kwargs)


__all__ = ["LLMAnswerer", "LLMManager", "LLMPicker", "make_policy"]
