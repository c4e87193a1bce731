"""The text contract between an environment, a policy and a reward: what a step shows and what comes back.

- Manager side: `ManagerStep` (one unit of dialogue, its candidate facts, the related memories as
  `MemoryView`s with per-prompt ids), `render_manager_prompt`, and the `Manager` protocol
  (`decide(steps) -> completions`).
- Answer side: `AnswerRequest` (a question and its `Candidate`s, in an answer mode of `memrl.protocol.modes`,
  which renders it) and the `Answerer` protocol (`answer(requests) -> AnswerParse`s).

Environments build these, policies consume them, rewards score what the policies return: all three import
this module, it imports none of them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from memrl.data.schema import Conversation, GoldOp, Question, Session
from memrl.memory.bank import IdMap, MemoryBank
from memrl.memory.index import TextIndex
from memrl.protocol.facts import CandidateFact
from memrl.protocol.prompts import format_memories_compact, format_memories_mem0, render

# The two policies, by the one name each has everywhere (recipes, make_policy, a policy's `kind`, reports).
ROLES = ("manager", "answer")
MANAGER_PROMPTS = ("compact", "compact_sim", "memory_r1")
# The answer mode a request is in when nobody says otherwise (what each mode means: memrl.protocol.modes).
DEFAULT_ANSWER_MODE = "compact"


# ---- observations -----------------------------------------------------------------------------------------
@dataclass
class MemoryView:
    """A memory as one prompt shows it: prompt id, text, time; key/owner are for baselines, not the prompt."""

    id: str  # prompt-local id ("0", "1", ...)
    bank_id: str
    text: str
    owner: str | None = None
    key: str | None = None
    observed_at: str | None = None
    event_time: str | None = None


@dataclass
class ManagerStep:
    """Everything about one step: the prompt, and the structured state behind it (for baselines and logs)."""

    conversation_id: str
    index: int  # step index in the episode
    num_steps: int
    turn_ids: list[str]
    time: str | None  # session timestamp: stamps observed_at / valid_from of what the step writes
    speaker: str
    dialogue: str  # the unit's turns as the prompt shows them
    facts: list[CandidateFact]
    memories: list[MemoryView]
    gold_ops: list[GoldOp]  # never shown to the policy; the oracle manager and the op reward use them
    probes: list[Question]
    facts_seen: int  # candidate facts shown before this step (denominator of the size term)
    has_gold: bool  # the conversation has gold ops (op and temporal terms apply)
    fact_source: str
    prompt_style: str
    messages: list[dict[str, str]] = field(default_factory=list)

    @property
    def id_map(self) -> IdMap:
        return IdMap([m.bank_id for m in self.memories])

    def to_row(self) -> dict[str, Any]:
        """Flat, Arrow-friendly columns (JSON strings for nested parts)."""
        return {
            "prompt": [dict(m) for m in self.messages],
            "conversation_id": self.conversation_id,
            "step_index": self.index,
            "num_steps": self.num_steps,
            "turn_ids": list(self.turn_ids),
            "time": self.time or "",
            "speaker": self.speaker,
            "dialogue": self.dialogue,
            "facts": json.dumps([f.to_dict() for f in self.facts], ensure_ascii=False),
            "memories": json.dumps([asdict(m) for m in self.memories], ensure_ascii=False),
            "id_map": json.dumps({m.id: m.bank_id for m in self.memories}),
            "gold_ops": json.dumps([asdict(g) for g in self.gold_ops], ensure_ascii=False),
            "probes": json.dumps([asdict(q) for q in self.probes], ensure_ascii=False),
            "facts_seen": self.facts_seen,
            "has_gold": self.has_gold,
            "fact_source": self.fact_source,
            "prompt_style": self.prompt_style,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ManagerStep:
        try:
            return cls(
                conversation_id=str(row["conversation_id"]),
                index=int(row["step_index"]),
                num_steps=int(row["num_steps"]),
                turn_ids=list(row["turn_ids"]),
                time=row["time"] or None,
                speaker=str(row["speaker"]),
                dialogue=str(row["dialogue"]),
                facts=[CandidateFact.from_dict(f) for f in json.loads(row["facts"])],
                memories=[MemoryView(**m) for m in json.loads(row["memories"])],
                gold_ops=[GoldOp(**g) for g in json.loads(row["gold_ops"])],
                probes=[Question(**q) for q in json.loads(row["probes"])],
                facts_seen=int(row["facts_seen"]),
                has_gold=bool(row["has_gold"]),
                fact_source=str(row["fact_source"]),
                prompt_style=str(row["prompt_style"]),
                messages=[dict(m) for m in row.get("prompt") or []],
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"malformed manager snapshot row ({row.get('snapshot_id', '?')}): {e!r}") from None


def render_manager_prompt(step: ManagerStep, style: str) -> list[dict[str, str]]:
    """The chat messages of a step in prompt style "compact" or "memory_r1"."""
    mems = [{"text": m.text, "event_time": m.event_time, "observed_at": m.observed_at} for m in step.memories]
    ids = [m.id for m in step.memories]
    if style == "compact_sim":
        # The smallest prompt that still carries the decision, for sub-million-parameter models on CPU: the
        # step's facts, then the related memories, each tagged with how close it is to the facts, as a
        # retriever's similarity would be (Mem0 ranks related memories by similarity). "same": the fact
        # restated; "close": the same subject and relation (a candidate UPDATE/DELETE target: on synthetic
        # data the world key, otherwise word overlap >= 0.6); "far": unrelated. No system prompt and no
        # dialogue: a tiny model cannot learn long-range string comparison in a few hundred CPU steps, and
        # what is left is the decision RL is about (which op, on which memory). Output: the compact op list.
        facts = "\n".join(f"- {f.text}" for f in step.facts) or "(none)"
        lines = [f"[{i}] {_similarity_tag(v, step.facts)}: {m['text']}" for i, m, v in zip(ids, mems, step.memories)]
        return [{"role": "user", "content": f"Facts:\n{facts}\nMemories:\n" + ("\n".join(lines) or "(none)")}]
    if style == "compact":
        dialogue = step.dialogue
        if step.fact_source != "turn" and step.facts:
            dialogue += "\nFacts:\n" + "\n".join(f"- {f.text}" for f in step.facts)
        return render("compact_manager", memories=format_memories_compact(mems, ids), dialogue=dialogue)
    if style == "memory_r1":
        facts = json.dumps([f.text for f in step.facts], ensure_ascii=False)
        return render("memory_r1_manager", memory=format_memories_mem0(mems, ids), facts=facts)
    raise ValueError(f"unknown manager prompt style {style!r}; choose one of {list(MANAGER_PROMPTS)}")


_WORD = re.compile(r"[a-z0-9]+")
_NEGATION_SUFFIX = " (no longer true)"


def _similarity_tag(memory: "MemoryView", facts: Sequence[Any]) -> str:
    mem = memory.text.strip().lower()
    mw = set(_WORD.findall(mem))
    tag = "far"
    for f in facts:
        ft = f.text.strip().lower()
        if ft.endswith(_NEGATION_SUFFIX):
            ft = ft[: -len(_NEGATION_SUFFIX)]
        if ft == mem:
            return "same"
        if memory.key and getattr(f, "entry", None):
            if memory.key == f.entry:
                tag = "close"
            continue
        fw = set(_WORD.findall(ft))
        if mw and fw and len(mw & fw) / len(mw | fw) >= 0.6:
            tag = "close"
    return tag


def messages_text(messages: Sequence[dict[str, str]]) -> str:
    """The observation string: the messages' contents, system first, separated by a blank line."""
    return "\n\n".join(m["content"] for m in messages)


# ---- policies (the interface evaluation swaps) ------------------------------------------------------------
class Manager(Protocol):
    """A memory manager: one completion text per step (the environment parses it)."""

    name: str

    def decide(self, steps: Sequence[ManagerStep]) -> list[str]: ...


class Answerer(Protocol):
    name: str

    def answer(self, requests: Sequence[Any]) -> list[Any]: ...  # AnswerRequest -> AnswerParse


# ---- what an answerer receives ----------------------------------------------------------------------------
@dataclass
class Candidate:
    id: str  # the id the prompt shows ("0", "1", ... or "session_3")
    text: str
    time: str | None = None  # when it was said / written (session time, memory observed_at)
    event_time: str | None = None  # when the fact holds, for memories that store it
    owner: str | None = None  # speaker the memory is about / who said the turn
    source_ids: list[str] = field(default_factory=list)  # turn ids it comes from
    doc_id: str = ""  # bank id, turn id or session id
    score: float | None = None  # retrieval score (BM25), None when not retrieved


@dataclass
class AnswerRequest:
    """One question with its candidates: the input every answerer (LLM or heuristic) takes."""

    question: Question
    candidates: list[Candidate]
    conversation: Conversation | None = None  # full-context and oracle answerers read the dialogue
    answer_mode: str = DEFAULT_ANSWER_MODE  # a name in memrl.protocol.modes
    messages: list[dict[str, str]] | None = None  # the rendered prompt (LLM answerers)


def memory_candidates(bank: MemoryBank, index: TextIndex, query: str, k: int) -> list[Candidate]:
    """Memory-R1's retrieval: top-k current memories per speaker, in bank order, ids "0".."n-1"."""
    out = []
    for i, (bid, score) in enumerate(index.search_per_owner(query, k)):
        e = bank.get(bid)
        out.append(Candidate(str(i), e.text, e.observed_at, e.event_time, e.owner, list(e.source_turn_ids), bid, score))
    return out


# ---- prompts ------------------------------------------------------------------------------------------------
def as_memory_fields(c: Candidate) -> dict[str, Any]:
    return {"text": c.text, "event_time": c.event_time, "observed_at": c.time}


def sessions_by_id(conv: Conversation | None) -> dict[str, Session]:
    return {s.session_id: s for s in conv.sessions} if conv is not None else {}
