"""What both environments share: the text space of prompts and completions, and how they take conversations."""

from __future__ import annotations

import os
import string
from typing import Any

from gymnasium import spaces

from memrl.data.loaders import load_conversations
from memrl.data.schema import Conversation
from memrl.data.validate import validate_conversations
from memrl.data_synth.config import SynthConfig
from memrl.data_synth.synth import synthesize_conversation


class UnicodeText(spaces.Text):
    """A Text space for prompts and completions: any Unicode string up to `max_length` is a member.

    gymnasium's Text checks membership against a finite charset; dialogue has emoji, accents and curly
    quotes, so membership here is "a str of allowed length". `sample()` draws printable ASCII (a random
    completion is simply a format failure).
    """

    def __init__(self, max_length: int, min_length: int = 0, seed: int | None = None):
        super().__init__(max_length=max_length, min_length=min_length, charset=string.printable, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"UnicodeText({self.min_length}, {self.max_length})"


def as_conversations(conversations: Any) -> list[Conversation]:
    """A list of Conversations, a path to JSONL / a `datasets` directory, or None (a small synthetic set)."""
    if conversations is None:
        return default_conversations()
    if isinstance(conversations, Conversation):
        return [conversations]
    if isinstance(conversations, (str, bytes)) or hasattr(conversations, "__fspath__"):
        path = os.fspath(conversations)
        return load_conversations(path)
    convs = list(conversations)
    if not convs or not all(isinstance(c, Conversation) for c in convs):
        raise ValueError("conversations must be a non-empty list of memrl.data.schema.Conversation")
    return validate_conversations(convs, "conversations")


def default_conversations() -> list[Conversation]:
    """A few seeded synthetic conversations, so `gymnasium.make("memrl/...")` works without arguments."""
    cfg = SynthConfig(seed=0)
    return [synthesize_conversation(cfg, i) for i in range(4)]
