"""Fuzz every reader with hypothesis: whatever the bytes, a reader returns valid conversations or raises
DataError (one line naming the file) -- never another exception.

Each reader gets FUZZ_EXAMPLES generated files (10,000 by default; MEMRL_FUZZ_EXAMPLES overrides): a valid
seed record (from tests/fixtures or a synthetic conversation) with 1-4 structural mutations (a key deleted,
a value replaced by arbitrary JSON, a list element duplicated -- duplicate ids --, an id pointed elsewhere)
or byte-level damage (a flipped byte, invalid UTF-8, truncation). Whatever a reader accepts must pass the
common validator, so the same file gets the same verdict everywhere.
"""

from __future__ import annotations

import atexit
import copy
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memrl.data.io import DataError, read_conversations
from memrl.data.loaders import load_locomo, load_longmemeval, load_timedial
from memrl.data.validate import conversation_problem

FIXTURES = Path(__file__).parent / "fixtures"
FUZZ_EXAMPLES = int(os.environ.get("MEMRL_FUZZ_EXAMPLES", "10000"))
SETTINGS = settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))
_TMP = Path(tempfile.mkdtemp(prefix="memrl-fuzz-", dir="/dev/shm" if os.access("/dev/shm", os.W_OK) else None))
atexit.register(shutil.rmtree, _TMP, True)

def _json_value(rnd, depth: int = 0):
    """An arbitrary small JSON value (hypothesis drives `rnd`, so cases are reproducible and shrinkable)."""
    kind = rnd.randrange(9 if depth < 2 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rnd.random() < 0.5
    if kind == 2:
        return rnd.choice([-1, 0, 1, 5, 10**6, 2**63])
    if kind == 3:
        return rnd.choice([0.5, -2.0, 1e300])
    if kind in (4, 5):
        return "".join(rnd.choice("aZ0 :-/\u00e9\u4e2d\U0001f600\n\t\"{") for _ in range(rnd.randrange(8)))
    if kind in (6, 7):
        return [_json_value(rnd, depth + 1) for _ in range(rnd.randrange(3))]
    return {str(rnd.randrange(5)): _json_value(rnd, depth + 1)
            for _ in range(rnd.randrange(3))}


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def _random_slot(data, rnd):
    """(container, key) reached by a random walk from the root, or None for an empty root."""
    node = data
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            return None
        key = rnd.choice(keys)
        child = node[key]
        if not isinstance(child, (dict, list)) or not child or rnd.random() < 0.3:
            return node, key
        node = child


_STRINGS: dict[int, list[str]] = {}


def mutated(seed, rnd) -> bytes:
    """The file bytes of `seed` (a JSON value) after 1-4 structural mutations and maybe byte damage."""
    data = json.loads(json.dumps(seed))  # a deep copy, faster than copy.deepcopy
    if id(seed) not in _STRINGS:  # seeds are module constants: computed once each
        _STRINGS[id(seed)] = list(_strings(seed))
    strings = _STRINGS[id(seed)]
    for _ in range(rnd.randint(1, 4)):
        slot = _random_slot(data, rnd)
        if slot is None:
            break
        parent, key = slot
        action = rnd.choice(["delete", "replace", "duplicate", "swap_id", "replace"])
        if action == "delete":
            del parent[key]
        elif action == "replace":
            parent[key] = _json_value(rnd)
        elif action == "duplicate" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        elif action == "swap_id" and strings:  # a reference to another string of the record (ids pointing elsewhere)
            parent[key] = rnd.choice(strings)
    raw = json.dumps(data, ensure_ascii=False).encode("utf-8")
    damage = rnd.choice(["none", "none", "none", "flip", "truncate", "bad_utf8"])
    if damage != "none" and raw:
        i = rnd.randrange(len(raw))
        if damage == "flip":
            raw = raw[:i] + bytes([rnd.randrange(256)]) + raw[i + 1:]
        elif damage == "truncate":
            raw = raw[:i]
        else:
            raw = raw[:i] + b"\xff\xfe" + raw[i:]
    return raw


def _check(reader, raw: bytes, name: str) -> None:
    path = _TMP / name
    path.write_bytes(raw)
    try:
        convs = reader(path)
    except DataError as e:
        assert str(path) in str(e) and "\n" not in str(e), str(e)  # one line naming the file
        return
    for c in convs:  # whatever a reader accepts passes the common validator
        assert conversation_problem(c) is None


def _seed_list(name: str, n: int = 1):
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))[:n]


LOCOMO_SEED = _seed_list("locomo_quirks.json", 2)[1]  # the small record; the quirky one is in test_loaders
LOCOMO_FILE = [LOCOMO_SEED]
LME_SEED = _seed_list("longmemeval_small.json")
TIMEDIAL_SEED = _seed_list("timedial_small.json")


def _synthetic_seed() -> list[dict]:
    from memrl.data_synth.config import SynthConfig
    from memrl.data_synth.synth import synthesize_conversation

    conv = synthesize_conversation(SynthConfig(seed=0, sessions_per_conversation=[2, 2], turns_per_session=[3, 4]), 0)
    d = conv.to_dict()
    d["sessions"] = d["sessions"][:2]  # small records keep the 10k cases fast
    keep = {t["turn_id"] for s in d["sessions"] for t in s["turns"]}
    d["questions"] = [q for q in d["questions"] if set(q["evidence_turn_ids"]) <= keep][:2]
    for q in d["questions"]:
        q["minimal_evidence"] = None
    d["gold_ops"] = [o for o in d["gold_ops"] if o["turn_id"] in keep][:4]
    return [d]


JSONL_SEED = _synthetic_seed()


def _jsonl(records) -> bytes:
    return b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records)


def test_seeds_are_valid():
    """The fuzzers start from records every reader accepts (so mutations, not the seed, cause rejections)."""
    for reader, raw, name in ((read_conversations, _jsonl(JSONL_SEED), "seed.jsonl"),
                              (load_locomo, json.dumps([LOCOMO_SEED]).encode(), "seed_locomo.json"),
                              (load_longmemeval, json.dumps(LME_SEED).encode(), "seed_lme.json"),
                              (load_timedial, json.dumps(TIMEDIAL_SEED).encode(), "seed_td.json")):
        path = _TMP / name
        path.write_bytes(raw)
        assert reader(path)


@pytest.mark.slow
@SETTINGS
@given(st.randoms(use_true_random=False))
def test_fuzz_common_schema_jsonl(rnd):
    raw = mutated(JSONL_SEED[0], rnd)
    twice = rnd.random() < 0.3  # the same record twice: duplicate conversation ids
    _check(read_conversations, raw + b"\n" + (raw + b"\n" if twice else b""), "fuzz.jsonl")


@pytest.mark.slow
@SETTINGS
@given(st.randoms(use_true_random=False))
def test_fuzz_locomo(rnd):
    _check(load_locomo, mutated(LOCOMO_FILE, rnd), "fuzz_locomo.json")


@pytest.mark.slow
@SETTINGS
@given(st.randoms(use_true_random=False))
def test_fuzz_longmemeval(rnd):
    _check(load_longmemeval, mutated(LME_SEED, rnd), "fuzz_lme.json")


@pytest.mark.slow
@SETTINGS
@given(st.randoms(use_true_random=False))
def test_fuzz_timedial(rnd):
    _check(load_timedial, mutated(TIMEDIAL_SEED, rnd), "fuzz_td.json")


@pytest.mark.parametrize("reader,seed,name", [
    (read_conversations, None, "mix.jsonl"), (load_locomo, "locomo", "mix_locomo.json"),
    (load_longmemeval, "lme", "mix_lme.json"), (load_timedial, "td", "mix_td.json")])
def test_mutations_exercise_both_verdicts(reader, seed, name):
    """The mutator is not vacuous: some mutated files load, some are rejected (DataError)."""
    import random

    seeds = {None: JSONL_SEED[0], "locomo": LOCOMO_FILE, "lme": LME_SEED, "td": TIMEDIAL_SEED}
    rnd = random.Random(0)
    verdicts = {"ok": 0, "DataError": 0}
    for _ in range(300):
        raw = mutated(seeds[seed], rnd)
        path = _TMP / name
        path.write_bytes(raw + (b"\n" if seed is None else b""))
        try:
            reader(path)
            verdicts["ok"] += 1
        except DataError:
            verdicts["DataError"] += 1
    assert verdicts["ok"] >= 5 and verdicts["DataError"] >= 5, verdicts  # measured: 51/47/10/21 of 300 load
