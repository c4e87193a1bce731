"""One validator for common-schema conversations, used by every reader.

`memrl.data.io.read_conversations` / `read_hf`, every benchmark loader (`memrl.data.loaders.load*`), and
so `memrl eval`, `memrl train`, `memrl distill`, `memrl data stats`/`convert` and the environments all call
`validate_conversations`, so the same file gets the same verdict everywhere. Problems raise `DataError`
naming the file, the line or record, and the problem:

- a record without `sessions` (the schema would otherwise read it as a conversation with no dialogue),
- a conversation with no turns (except a replayed results record, which carries only what its system
  retrieved),
- duplicate conversation ids (within one file), duplicate turn ids or session ids (within a conversation),
  duplicate question ids (within a conversation),
- a question whose evidence (`evidence_turn_ids`, `minimal_evidence`) names a turn the conversation lacks,
  or whose `evidence_session_ids` names a missing session,
- a gold op whose `turn_id` names a missing turn.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from memrl.data.schema import Conversation, DataError

REQUIRED_RECORD_KEYS = ("conversation_id", "speakers", "sessions")


def _error(message: str) -> Exception:
    return DataError(message)


def check_record(obj: Any, where: str) -> None:
    """Raw-record checks the dataclass defaults would hide (`sessions` missing reads as no sessions)."""
    if isinstance(obj, dict) and "sessions" not in obj:
        raise _error(f"{where}: missing field 'sessions' (a conversation needs its dialogue)")


def conversation_problem(conv: Conversation) -> str | None:
    """The first problem with one conversation, or None."""
    cid = conv.conversation_id
    turn_ids: set[str] = set()
    session_ids: set[str] = set()
    for s in conv.sessions:
        if s.session_id in session_ids:
            return f"conversation {cid!r}: duplicate session id {s.session_id!r}"
        session_ids.add(s.session_id)
        for t in s.turns:
            if t.turn_id in turn_ids:
                return f"conversation {cid!r}: duplicate turn id {t.turn_id!r}"
            turn_ids.add(t.turn_id)
    # A replayed results record (memrl.data.loaders.timedial_results) has only the sessions its system retrieved into
    # the prompt, possibly none: its prediction is scored, no dialogue is read.
    if not turn_ids and (conv.meta or {}).get("sessions_from") != "prompt":
        return f"conversation {cid!r}: no turns (no sessions, or only empty ones)"
    question_ids: set[str] = set()
    for q in conv.questions:
        qw = f"conversation {cid!r}: question {q.question_id!r}"
        if q.question_id in question_ids:
            return f"conversation {cid!r}: duplicate question id {q.question_id!r}"
        question_ids.add(q.question_id)
        for key in ("evidence_turn_ids", "minimal_evidence"):
            for t in getattr(q, key) or []:
                if not isinstance(t, str) or t not in turn_ids:
                    return f"{qw}: {key} names turn {t!r}, which the conversation does not have"
        for s in q.evidence_session_ids:
            if not isinstance(s, str) or s not in session_ids:
                return f"{qw}: evidence_session_ids names session {s!r}, which the conversation does not have"
    for i, o in enumerate(conv.gold_ops):
        if o.turn_id not in turn_ids:
            return (f"conversation {cid!r}: gold_ops[{i}] ({o.op} {o.entry!r}) names turn {o.turn_id!r}, "
                    "which the conversation does not have")
    return None


def validate_conversations(convs: Iterable[Conversation], source: str,
                           where: Sequence[str] | None = None) -> list[Conversation]:
    """Check every conversation and the set of them; return them as a list, or raise DataError.

    `source` names the file (or dataset); `where[i]` names conversation i's line or record ("line 3").
    """
    convs = list(convs)
    seen: dict[str, str] = {}
    for i, conv in enumerate(convs):
        loc = f"{source}: {where[i]}" if where is not None and i < len(where) else f"{source}: record {i + 1}"
        problem = conversation_problem(conv)
        if problem:
            raise _error(f"{loc}: {problem}")
        if conv.conversation_id in seen:
            raise _error(f"{loc}: duplicate conversation id {conv.conversation_id!r} "
                         f"(first at {seen[conv.conversation_id]})")
        seen[conv.conversation_id] = where[i] if where is not None and i < len(where) else f"record {i + 1}"
    return convs


__all__ = ["check_record", "conversation_problem", "validate_conversations"]
