"""The generation contract: a batch of chat prompts in, n samples each out (`GenerationBackend`), with the
sampling parameters every backend maps onto its own (`SamplingParams`). The backends themselves
(transformers, vLLM) are in `memrl.policies.backends`; this module imports neither, so code below the
policies (data synthesis, distillation) can take a backend and build its requests without torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

Messages = list[dict[str, str]]
Prompt = Messages | str


# ---- the protocol ---------------------------------------------------------------------------------------
@dataclass
class SamplingParams:
    """Backend-independent sampling parameters (mapped onto HF GenerationConfig / vllm.SamplingParams)."""

    n: int = 1  # samples per prompt
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    max_tokens: int = 128  # new tokens per sample
    stop: list[str] | None = None  # stop strings; text is cut before the first one
    seed: int | None = None  # makes one generate() call reproducible (same prompts, same batch size)

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"SamplingParams.n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"SamplingParams.temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"SamplingParams.top_p must be in (0, 1], got {self.top_p}")
        if self.max_tokens < 1:
            raise ValueError(f"SamplingParams.max_tokens must be >= 1, got {self.max_tokens}")
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        if self.stop is not None and not all(isinstance(s, str) and s for s in self.stop):
            raise ValueError(f"SamplingParams.stop must be a list of non-empty strings, got {self.stop!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    @property
    def logprob_temperature(self) -> float:
        """The T in log_softmax(logits / T) that `Generation.logprobs` use (1.0 for greedy)."""
        return 1.0 if self.greedy else float(self.temperature)


@dataclass
class Generation:
    text: str  # decoded completion, special tokens skipped, cut before a stop string
    token_ids: list[int]  # completion tokens (EOS included when the model emitted it)
    logprobs: list[float]  # one per token id: log_softmax(logits / T) of the chosen token
    prompt_token_ids: list[int]
    finish_reason: str  # "stop" (EOS or stop string) | "length"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@runtime_checkable
class GenerationBackend(Protocol):
    tokenizer: Any

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[list[Generation]]: ...
