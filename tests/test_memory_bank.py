"""Versioned memory bank: op validation, history, id remapping, retrieval, persistence."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memrl.memory import IdMap, MemoryBank, Op

T1, T2, T3 = "2023-01-01T00:00:00", "2023-02-01T00:00:00", "2023-03-01T00:00:00"


def test_add_update_delete_keep_history():
    b = MemoryBank()
    r = b.apply([Op("ADD", text="Ana lives in Lisbon"), Op("ADD", text="Ana likes tea")], time=T1, owner="Ana",
                source_turn_ids=["D1:1"])
    assert r.counts() == {"ADD": 2, "UPDATE": 0, "DELETE": 0, "NOOP": 0}
    ids = b.id_map(b.current())
    r = b.apply([Op("UPDATE", id="0", text="Ana lives in Porto"), Op("DELETE", id="1")], id_map=ids, time=T2)
    assert not r.rejected
    assert [e.text for e in b.current()] == ["Ana lives in Porto"]
    hist = b.history("m1")
    assert [v.text for v in hist] == ["Ana lives in Lisbon", "Ana lives in Porto"]
    assert hist[0].valid_to == T2 and hist[1].valid_from == T2 and hist[1].op == "UPDATE"
    # The deleted entry is closed, not gone.
    assert b.get("m2").valid_to == T2 and b.history("m2")[0].op == "ADD"
    # As of mid-January both old facts hold.
    assert sorted(v.text for _, v in b.as_of("2023-01-15T00:00:00")) == ["Ana likes tea", "Ana lives in Lisbon"]
    assert sorted(v.text for _, v in b.as_of(T3)) == ["Ana lives in Porto"]


def test_bad_ops_are_rejected_with_reasons_and_never_hit_other_entries():
    b = MemoryBank()
    b.apply([Op("ADD", text="x one"), Op("ADD", text="y two")], time=T1)
    ids = b.id_map(b.current())
    r = b.apply([
        Op("UPDATE", id="7", text="nope"),      # unknown prompt id
        Op("DELETE", id=None),                  # no id
        Op("UPDATE", id="0", text="  "),        # empty text
        Op("FLY", id="0"),                      # unknown op
        Op("ADD", text=""),                     # empty add
        Op("DELETE", id="1"),
        Op("UPDATE", id="1", text="again"),     # stale: deleted just above
        Op("NONE", id="0"),                     # Mem0's NONE is our NOOP
    ], id_map=ids, time=T2)
    reasons = [x.reason for x in r.rejected]
    assert len(reasons) == 6
    assert "unknown id '7'" in reasons[0] and "without an id" in reasons[1] and "empty text" in reasons[2]
    assert "unknown op" in reasons[3] and "stale id" in reasons[5]
    assert [op.op for op, _ in r.applied] == ["DELETE", "NOOP"]
    assert [e.text for e in b.current()] == ["x one"]


def test_duplicate_add_is_flagged():
    b = MemoryBank()
    b.apply([Op("ADD", text="Ana likes tea")], time=T1)
    r = b.apply([Op("ADD", text="ana likes tea")], time=T2)
    assert r.duplicates == ["m2"]


def test_idmap_resolves_only_prompt_ids():
    m = IdMap(["m5", "m9"])
    assert m.resolve("1") == "m9" and m.resolve(" 0 ") == "m5" and m.resolve("m5") is None and m.resolve(None) is None


def test_search_bm25_per_owner_and_after_changes():
    b = MemoryBank()
    b.apply([Op("ADD", text="Ana lives in Lisbon"), Op("ADD", text="Ana adopted a dog named Rex")], owner="Ana",
            time=T1)
    b.apply([Op("ADD", text="Ben lives in Madrid"), Op("ADD", text="Ben plays chess")], owner="Ben", time=T1)
    top = b.search("where does Ana live", k=2)
    assert top[0][0].text == "Ana lives in Lisbon"
    assert [e.text for e, _ in b.search("lives", k=5, owner="Ben")] == ["Ben lives in Madrid"]
    b.apply([Op("UPDATE", id="m1", text="Ana lives in Porto")], time=T2)
    texts = [e.text for e, _ in b.search("Ana lives", k=5)]
    assert "Ana lives in Porto" in texts and "Ana lives in Lisbon" not in texts
    per_owner = b.search_per_owner("lives", k=1)
    assert {e.owner for e in per_owner} == {"Ana", "Ben"}


def test_large_bank_delta_index_matches_full_rebuild():
    """Past `rebuild_below`, new entries go to a delta index; results must still include them and
    must not include closed entries."""
    b = MemoryBank(rebuild_below=50, merge_fraction=0.5)
    for i in range(200):
        b.add(f"note {i} about topic{i % 7} and item{i}", owner="A" if i % 2 else "B", time=T1)
    b.search("topic3", k=5)  # builds the main index
    new = b.add("a brand new fact about zebras", owner="A", time=T2)
    b.apply([Op("DELETE", id="m4")], time=T2)
    assert b.search("zebras", k=3)[0][0].id == new
    assert all(e.id != "m4" for e, _ in b.search("topic3 item3", k=200))
    ref = MemoryBank(rebuild_below=10**9)
    ref._entries = b._entries  # same entries, always full rebuild
    ref._dirty = True
    assert {e.id for e, _ in b.search("item17", k=3)} & {e.id for e, _ in ref.search("item17", k=3)}


def test_save_load_roundtrip(tmp_path):
    b = MemoryBank()
    b.apply([Op("ADD", text="alpha beta gamma", event_time="2022-12-24T00:00:00")], time=T1, owner="A", source_turn_ids=["D1:2"])
    b.apply([Op("UPDATE", id="m1", text="alpha beta delta")], time=T2)
    p = tmp_path / "bank.json"
    b.save(p)
    c = MemoryBank.load(p)
    assert c.to_dict() == b.to_dict()
    assert c.search("delta")[0][0].id == "m1" and not MemoryBank().search("x")
    b2 = MemoryBank(); b2.add("a b c"); assert b2.search("a b") == []
    p.write_text('{"entries": [')
    with pytest.raises(ValueError, match="bank.json"):
        MemoryBank.load(p)


def test_copy_is_independent():
    b = MemoryBank()
    b.add("x y", time=T1)
    c = b.copy()
    c.apply([Op("DELETE", id="m1")], time=T2)
    assert len(b) == 1 and len(c) == 0


# ---- property-based: random op sequences vs a reference model -----------------------------------------
op_strategy = st.tuples(
    st.sampled_from(["ADD", "UPDATE", "DELETE", "NOOP", "NONE", "bogus"]),
    st.one_of(st.none(), st.integers(-2, 12).map(str), st.text(max_size=3)),
    st.one_of(st.none(), st.text(max_size=12)),
)


class ReferenceBank:
    """The simplest model of the bank's current view: an ordered dict of id -> text."""

    def __init__(self):
        self.current: dict[str, str] = {}
        self.next = 1
        self.versions = 0

    def apply(self, ops, prompt_to_bank):
        for op_name, pid, text in ops:
            name = {"NONE": "NOOP"}.get(op_name, op_name)
            text = text.strip() if isinstance(text, str) else ""
            bid = prompt_to_bank.get(str(pid).strip()) if pid is not None else None
            if name == "ADD" and text:
                self.current[f"m{self.next}"] = text
                self.next += 1
                self.versions += 1
            elif name == "UPDATE" and text and bid in self.current:
                self.current[bid] = text
                self.versions += 1
            elif name == "DELETE" and bid in self.current:
                del self.current[bid]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(op_strategy, max_size=6), max_size=8))
def test_random_op_sequences_match_reference(batches):
    b, ref = MemoryBank(), ReferenceBank()
    for step, batch in enumerate(batches):
        time = f"2023-01-{step + 1:02d}T00:00:00"
        ids = b.id_map(b.current())
        r = b.apply([Op(o, i, t) for o, i, t in batch], id_map=ids, time=time)  # must never raise
        ref.apply(batch, ids.to_bank)
        assert len(r.applied) + len(r.rejected) == len(batch)
        assert {e.id: e.text for e in b.current()} == ref.current
        assert b.num_versions == ref.versions  # no version is ever lost
        for e in b.to_dict()["entries"]:  # every entry ever written, current or closed
            hist = b.history(e["id"])
            assert len(hist) == e["version"]
            assert all(v.valid_to is not None for v in hist[:-1])
