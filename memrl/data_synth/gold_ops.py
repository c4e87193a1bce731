"""Gold operation traces: what a perfect memory manager issues after each turn, and replaying them.

The policy a "perfect manager" follows (what the labels mean):
- memory holds facts about the speakers themselves: where they live, their job, pets, hobbies, tastes,
  relatives, languages, diet, vehicle, instrument, past events with their date, plans with their date;
- ADD when a fact is first stated; UPDATE (same entry) when it is refined, changed, or corrected; DELETE when
  it is retracted or ends (quit, gave up, passed away, cancelled); NOOP (with the entry) when a known fact
  is merely repeated;
- chit-chat, reactions and news about third parties ("my cousin moved to Lyon") are NOOP with entry "":
  they are not about the speakers, and storing them is what distractors are there to punish;
- the text is the canonical memory text of the fact's new state (render.canonical): short, third person,
  relative dates resolved against the session date ("Ana ran a half marathon on 6 May 2023");
  `event_time` is the ISO date the fact refers to (first day of the month / year for coarser times);
- for DELETE, `text` is the text of the entry being closed (Mem0's "old_memory"), for reference.

One turn yields at least one op; the entry of an op is the world key ("Ana/city"), which replay maps to the
bank id that ADD returned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from memrl.data.schema import Conversation, GoldOp, Session
from memrl.data_synth.render import Record
from memrl.memory.bank import MemoryBank
from memrl.memory.ops import Op

if TYPE_CHECKING:
    from memrl.memory.bank import MemoryBank


def gold_ops_from_records(sessions: list[Session], records: list[Record]) -> list[GoldOp]:
    by_turn: dict[str, list[Record]] = {}
    for r in records:
        by_turn.setdefault(r.turn_id, []).append(r)
    ops: list[GoldOp] = []
    for s in sessions:
        for t in s.turns:
            recs = by_turn.get(t.turn_id)
            if not recs:
                ops.append(GoldOp(t.turn_id, "NOOP", "", None, None))
                continue
            for r in recs:
                writes = r.op in ("ADD", "UPDATE")
                ops.append(GoldOp(t.turn_id, r.op, r.key, r.text,
                                  r.when.date if writes and r.when is not None else None))
    return ops


class ReplayError(ValueError):
    """A gold op did not apply (a bug in the generator, or a hand-edited file)."""


def replay_gold_ops(conv: Conversation, until: str | None = None, bank=None) -> tuple[MemoryBank, dict[str, str]]:
    """Apply `conv.gold_ops` to a MemoryBank in order, stamping each with its session's timestamp.

    Stops before the first session whose timestamp is after `until` (a question time), so the bank holds
    what a perfect manager knew when the question was asked. Returns the bank and world key -> bank id.
    """

    bank = bank if bank is not None else MemoryBank()
    times = {t.turn_id: s.timestamp for s in conv.sessions for t in s.turns}
    ids: dict[str, str] = {}
    for g in conv.gold_ops:
        time = times.get(g.turn_id)
        if until is not None and time is not None and time > until:
            break
        if g.op == "NOOP":
            continue
        owner = g.entry.split("/", 1)[0] if "/" in g.entry else None
        if g.op == "ADD":
            op = Op("ADD", text=g.text, event_time=g.event_time)
        elif g.entry not in ids:
            raise ReplayError(f"{conv.conversation_id} {g.turn_id}: {g.op} of {g.entry!r} before its ADD")
        elif g.op == "UPDATE":
            op = Op("UPDATE", id=ids[g.entry], text=g.text, event_time=g.event_time)
        else:
            op = Op("DELETE", id=ids[g.entry])
        result = bank.apply([op], time=time, source_turn_ids=[g.turn_id], owner=owner, keys={0: g.entry})
        if result.rejected:
            raise ReplayError(f"{conv.conversation_id} {g.turn_id}: {g.op} {g.entry!r} rejected: "
                              f"{result.rejected[0].reason}")
        if g.op == "ADD":
            ids[g.entry] = result.applied[0][1]
    return bank, ids
