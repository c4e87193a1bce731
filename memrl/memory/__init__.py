"""Versioned memory bank, memory operations and retrieval."""

from memrl.memory.bank import IdMap, MemoryBank, MemoryEntry, MemoryVersion
from memrl.memory.ops import OP_TYPES, ApplyResult, Op, RejectedOp, normalize_op_name

__all__ = ["ApplyResult", "IdMap", "MemoryBank", "MemoryEntry", "MemoryVersion", "OP_TYPES", "Op", "RejectedOp",
           "normalize_op_name"]
