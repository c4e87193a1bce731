"""The generation contract: a batch of chat prompts in, n samples each out (`GenerationBackend`), with the
sampling parameters every backend maps onto its own (`SamplingParams`). The backends themselves
(transformers, vLLM) are in `memrl.policies.backends`; this module imports neither, so code below the
policies (data synthesis, distillation) can take a backend and build its requests without torch.
"""

from __future__ import annotations

import re
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


# ---- prompt formats -------------------------------------------------------------------------------------
# A model whose tokenizer has no chat template (a base model; a GGUF that carries none) is prompted the way
# lm-evaluation-harness prompts a base model without --apply_chat_template: with plain text.
PLAIN_PROMPT = "plain (no chat template)"
PLAIN_SEPARATOR = "\n\n"
# Named templates `chat_template=` accepts besides a Jinja file ("plain" forces the plain rendering).
CHAT_TEMPLATES = {
    "chatml": (
        "{% for message in messages %}"
        "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    ),
}


def plain_prompt(messages: Messages) -> str:
    """Chat messages as one plain-text prompt, for a tokenizer with no chat template: the messages' contents
    in order (system, user, assistant, ... as given), joined by a blank line ("\\n\\n"); no role names, no
    generation prompt, nothing appended. It is tokenized like a plain string prompt (with the tokenizer's own
    special tokens, e.g. its BOS)."""
    return PLAIN_SEPARATOR.join(str(m["content"]) for m in messages)


def resolve_chat_template(spec: str | None, what: str = "chat_template") -> str | None:
    """What `chat_template=SPEC` gives a backend: None for "" (the model's own template; plain text when it has
    none), "plain" for plain, else the Jinja text of a registered name (CHAT_TEMPLATES) or of a file. A name
    that is neither, or a file that is not a Jinja template, is a ValueError naming it."""
    from pathlib import Path

    s = (spec or "").strip()
    if not s:
        return None
    if s == "plain" or s in CHAT_TEMPLATES:
        return s if s == "plain" else CHAT_TEMPLATES[s]
    p = Path(s).expanduser()
    if not p.is_file():
        raise ValueError(f"{what}={s}: neither a registered template ({', '.join(['plain', *CHAT_TEMPLATES])}) "
                         "nor a file (give a Jinja chat template file, e.g. a model's chat_template.jinja)")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{what}={s}: cannot read it ({type(e).__name__})") from None
    try:
        import jinja2

        env = jinja2.Environment(extensions=["jinja2.ext.loopcontrols", "jinja2.ext.do"])
        env.parse(re.sub(r"\{%-?\s*(end)?generation\s*-?%\}", "", text))  # transformers' own tag
    except ImportError:
        pass
    except Exception as e:  # noqa: BLE001 - jinja2's TemplateSyntaxError and friends
        raise ValueError(f"{what}={s}: not a valid Jinja chat template ({' '.join(str(e).split())[:120]})") from None
    if "messages" not in text:
        raise ValueError(f"{what}={s}: not a chat template (it never reads `messages`)")
    return text
