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
from memrl.protocol.generation import SamplingParams
from memrl.protocol.memory_t1_official import official_answer, official_parse
from memrl.protocol.parsing import AnswerParse, parse_answer_output
from memrl.protocol.reader import extract_answer
from memrl.protocol.steps import (
    MANAGER_PROMPTS,
    PARSER_MODE,
    ROLES,
    AnswerRequest,
    ManagerStep,
    render_answer_prompt,
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
    """An answer agent on a backend: mode "compact" | "memory_r1" | "memory_t1" | "picker" | "select"."""

    kind = "answer"

    def __init__(self, backend: GenerationBackend, mode: str = "compact", sampling: SamplingParams | None = None,
                 name: str = "llm_answerer"):
        if mode not in PARSER_MODE:
            raise ValueError(f"unknown answer mode {mode!r}; choose one of {sorted(PARSER_MODE)}")
        self.backend = backend
        self.mode = mode
        self.sampling = sampling if sampling is not None else _default_sampling(128)
        self.name = name

    def prompts(self, requests: Sequence[AnswerRequest]) -> list[list[dict[str, str]]]:
        return [r.messages if r.messages and r.mode == self.mode else render_answer_prompt(r, self.mode)
                for r in requests]

    def generate(self, requests: Sequence[AnswerRequest],
                 sampling: SamplingParams | None = None) -> list[list[Generation]]:
        if not requests:
            return []
        return self.backend.generate(self.prompts(requests), sampling or self.sampling)

    def answer(self, requests: Sequence[AnswerRequest]) -> list[AnswerParse]:
        gens_all = self.generate(requests)
        parses = [parse_answer_output(gens[0].text, PARSER_MODE[self.mode]) for gens in gens_all]
        for p, gens in zip(parses, gens_all):
            p.raw = gens[0].text  # evaluation keeps the raw completion and scores it leniently
        if self.mode == "memory_t1":  # timedial_official reads the answer as Memory-T1's own parse finds it
            for p, gens in zip(parses, gens_all):
                p.official_answer = official_answer(official_parse(gens[0].text))
        if self.mode == "select":  # the frozen reader answers from the first selected memory
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
        super().__init__(backend, mode="picker", sampling=sampling, name=name)


def make_policy(spec: str, role: str, **kwargs: Any):
    """A policy from a name or a backend spec: a baseline name ("bm25", "rule_based", ...) or
    "transformers:PATH" / "vllm:PATH" / a checkpoint directory, as a manager or an answer agent (`role`: "manager" | "answer" | "picker").
    kwargs go to the LLM policy (prompt / mode / sampling)."""

    if role not in (*ROLES, "picker"):
        raise ValueError(f"role must be 'manager', 'answer' or 'picker', got {role!r}")
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
    if role == "picker":
        return LLMPicker(backend, **kwargs)
    return LLMAnswerer(backend, **kwargs)


__all__ = ["LLMAnswerer", "LLMManager", "LLMPicker", "make_policy"]
