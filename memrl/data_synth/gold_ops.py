"""Gold operation traces: what a perfect memory manager issues after each turn.

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

One turn yields at least one op; the entry of an op is the world key ("Ana/city"), which a replay maps to
the bank id that ADD returned (the `gold_ops` baseline manager; tests/test_synth.py replays them onto a bank
to check that every gold answer follows from them).
"""

from __future__ import annotations

from memrl.data.schema import GoldOp, Session
from memrl.data_synth.render import Record


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
