"""Candidate facts: what the memory manager is asked to decide about at each step.

Mem0 and Memory-R1 separate fact *extraction* (an LLM turns a message into short facts) from the *update*
decision (ADD / UPDATE / DELETE / NOOP per fact against the related memories); our manager policy learns
the second. The extractor is pluggable:

- "gold": synthetic data knows what each turn says. Facts come from the conversation's gold operations of
  that turn: ADD / UPDATE -> the op's canonical text; DELETE -> "<text> (no longer true)"; a NOOP that
  carries a text (a restated fact) -> that text, so that "do not store it twice" is learnable
  (`repeat_facts`); a NOOP without text -> nothing. Conversations without gold ops fall back to
  `turn.meta["facts"]` when it is a list of fact *sentences* (an offline extractor's output).
  memrl's own synthesizer stores world *keys* ("Ana/city") in `meta["facts"]`; those are recognized
  (no space, a "/") and never shown as facts.
- "turn": the turn itself ("Speaker: text"), for real benchmarks such as LoCoMo that have no extraction.

A fact carries the world key (`entry`) and its subject when the data has them: the environment uses them to
label bank entries (op-level metrics) and to pick the owner of a new memory; the policy never sees them.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from memrl.data.schema import Conversation, GoldOp, Turn

FACT_SOURCES = ("gold", "turn")
DELETE_SUFFIX = " (no longer true)"


@dataclass
class CandidateFact:
    text: str
    turn_id: str
    speaker: str
    subject: str | None = None  # who the fact is about (world key prefix), None when unknown
    entry: str | None = None  # world key ("Ana/city"), None on real data
    event_time: str | None = None  # when the fact holds, if the data says
    op: str | None = None  # the gold op the fact came from (never shown to the policy)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CandidateFact:
        return cls(**d)


def subject_of(entry: str | None) -> str | None:
    """"Ana/city" -> "Ana"; None when the key has no subject prefix."""
    if not entry or "/" not in entry:
        return None
    head = entry.split("/", 1)[0].strip()
    return head or None


def gold_ops_by_turn(conv: Conversation) -> dict[str, list[GoldOp]]:
    out: dict[str, list[GoldOp]] = {}
    for op in conv.gold_ops:
        out.setdefault(op.turn_id, []).append(op)
    return out


def _looks_like_key(s: str) -> bool:
    return "/" in s and " " not in s.strip()


def extract_facts(
    conv: Conversation,
    turn: Turn,
    source: str,
    ops_by_turn: dict[str, list[GoldOp]] | None = None,
    repeat_facts: bool = True,
) -> list[CandidateFact]:
    """The candidate facts of one turn under extractor `source` ("gold" or "turn")."""
    if source == "turn":
        text = turn.text.strip()
        return [CandidateFact(f"{turn.speaker}: {text}", turn.turn_id, turn.speaker, subject=turn.speaker)] if text else []
    if source != "gold":
        raise ValueError(f"unknown fact source {source!r}; choose one of {list(FACT_SOURCES)}")
    if conv.gold_ops:
        ops = (ops_by_turn if ops_by_turn is not None else gold_ops_by_turn(conv)).get(turn.turn_id, [])
        facts = []
        for op in ops:
            text = (op.text or "").strip()
            if not text:
                continue
            if op.op == "DELETE":
                text = text + DELETE_SUFFIX
            elif op.op == "NOOP" and not repeat_facts:
                continue
            facts.append(CandidateFact(text, turn.turn_id, turn.speaker, subject=subject_of(op.entry) or turn.speaker,
                                       entry=op.entry or None, event_time=op.event_time, op=op.op))
        return facts
    raw = turn.meta.get("facts") if isinstance(turn.meta, dict) else None
    if isinstance(raw, list) and raw and all(isinstance(x, str) for x in raw):
        return [CandidateFact(x.strip(), turn.turn_id, turn.speaker, subject=turn.speaker)
                for x in raw if x.strip() and not _looks_like_key(x)]
    return []


_WORD = re.compile(r"\w+")


def normalize_fact_text(text: str | None) -> str:
    """Lowercased words joined by single spaces: the form facts and memory texts are compared in."""
    return " ".join(_WORD.findall((text or "").lower()))


def match_fact(text: str | None, facts: list[CandidateFact], threshold: float = 0.6) -> tuple[CandidateFact | None, bool]:
    """The candidate fact an op's text states: (fact, exact). Exact normalized match first, else the best
    word-set F1 >= threshold (a paraphrase or a merge of the fact into an old memory), else (None, False)."""
    norm = normalize_fact_text(text)
    if not norm:
        return None, False
    for f in facts:
        if normalize_fact_text(f.text) == norm:
            return f, True
    words = set(norm.split())
    best, best_f1 = None, 0.0
    for f in facts:
        fw = set(normalize_fact_text(f.text).split())
        same = len(words & fw)
        if not same:
            continue
        p, r = same / len(words), same / len(fw)
        f1 = 2 * p * r / (p + r)
        if f1 > best_f1:
            best, best_f1 = f, f1
    return (best, False) if best is not None and best_f1 >= threshold else (None, False)
