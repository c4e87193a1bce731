"""Memory operations: what a manager asks for and what the bank reports back.

`Op.id` is whatever id the policy wrote: a prompt-local small integer ("0", "1", ...) that an `IdMap`
translates to a bank id, or a bank id directly when no map is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

OP_TYPES = ("ADD", "UPDATE", "DELETE", "NOOP")

# Mem0 / Memory-R1 say NONE for "no change"; we say NOOP. Both parse to the same op.
OP_ALIASES = {"ADD": "ADD", "UPDATE": "UPDATE", "DELETE": "DELETE", "NOOP": "NOOP", "NONE": "NOOP",
              "NO_OP": "NOOP", "NO-OP": "NOOP", "NOP": "NOOP"}


def normalize_op_name(name: Any) -> str | None:
    """Map an op name as a policy wrote it to one of OP_TYPES, or None if it is not an op."""
    if not isinstance(name, str):
        return None
    return OP_ALIASES.get(name.strip().upper())


@dataclass
class Op:
    op: str  # one of OP_TYPES
    id: str | None = None  # target entry (prompt-local id, or bank id); None for ADD
    text: str | None = None  # new text for ADD / UPDATE
    old_text: str | None = None  # Mem0's "old_memory" field, informational
    event_time: str | None = None  # ISO time the fact refers to, when the policy states one

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class RejectedOp:
    op: Op
    reason: str  # "unknown id 7", "stale id 3 (deleted at ...)", "empty text", ...


@dataclass
class ApplyResult:
    """What `MemoryBank.apply` did: applied ops (with the bank ids they touched) and rejections."""

    applied: list[tuple[Op, str | None]] = field(default_factory=list)  # (op, bank id or None for NOOP)
    rejected: list[RejectedOp] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # bank ids of ADDs whose text equals a current entry

    @property
    def num_valid(self) -> int:
        return len(self.applied)

    @property
    def num_invalid(self) -> int:
        return len(self.rejected)

    def counts(self) -> dict[str, int]:
        out = {k: 0 for k in OP_TYPES}
        for op, _ in self.applied:
            out[op.op] += 1
        return out

    def diff(self) -> dict[str, Any]:
        """A JSON-friendly summary, used in env `info` dicts."""
        return {
            "applied": [dict(op.to_dict(), bank_id=bid) for op, bid in self.applied],
            "rejected": [dict(r.op.to_dict(), reason=r.reason) for r in self.rejected],
            "duplicates": list(self.duplicates),
        }
