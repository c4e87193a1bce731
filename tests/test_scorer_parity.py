"""memrl's official-compatible scorers agree with the reference implementations on every stored vector.

tests/fixtures/scorer_vectors/ holds rows computed by the official code (provenance in its README, copied with the
vectors): 5,041 LoCoMo rows `{category, prediction, gold, official_score}` from snap-research/LoCoMo's
`task_eval/evaluation.py` over conv-26's answers and perturbations of them, and 29,733 TIME-Dial rows `{task,
prediction, gold, official_score, today}` from Memory-T1's `extract_option` -> `normalize_date` -> per-task rule on
crafted strings. Exact agreement on every row is required, so a "fix" of a reference quirk (LoCoMo dropping "and"
as an article, Memory-T1 filling a missing day from today's date, ...) fails here, naming the rows it changes.
"""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from pathlib import Path

import pytest

from memrl.rewards.accuracy import locomo_f1
from memrl.rewards.timedial_official import timedial_official

VECTORS = Path(__file__).resolve().parent / "fixtures" / "scorer_vectors"


def _rows(name: str) -> list[dict]:
    with gzip.open(VECTORS / f"{name}.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _disagreements(rows: list[dict], score) -> list[tuple[int, dict, float]]:
    """Rows where memrl's score differs from the official one. The vectors store scores rounded to 12 decimals
    (0.428571428571), so memrl's is rounded the same way: any real difference is far larger than 1e-12."""
    out = []
    for i, r in enumerate(rows):
        got = score(r)
        if round(got, 12) != r["official_score"]:
            out.append((i, r, got))
    return out


def _report(bad: list[tuple[int, dict, float]], n: int) -> str:
    shown = "; ".join(f"row {i}: {json.dumps(r)} -> memrl {got}" for i, r, got in bad[:5])
    return f"{len(bad)} of {n} rows disagree with the official scorer: {shown}"


def test_locomo_f1_matches_the_official_scorer_on_every_vector():
    rows = _rows("locomo_official_score_vectors")
    assert len(rows) == 5041
    bad = _disagreements(rows, lambda r: locomo_f1(r["prediction"], r["gold"], r["category"]))
    assert not bad, _report(bad, len(rows))


def test_timedial_official_matches_memory_t1_on_every_vector():
    rows = _rows("timedial_official_score_vectors")
    assert len(rows) == 29733
    todays = {r["today"] for r in rows}
    assert todays == {"2026-12-05"}  # their Localization rule fills a missing day from today: pinned per row
    today = {d: datetime.fromisoformat(d) for d in todays}
    bad = _disagreements(rows, lambda r: timedial_official(r["prediction"], r["gold"], r["task"],
                                                           today=today[r["today"]]))
    assert not bad, _report(bad, len(rows))


@pytest.mark.parametrize("name, n, key", [("locomo_official_score_vectors", 5041, "category"),
                                          ("timedial_official_score_vectors", 29733, "task")])
def test_vectors_cover_every_category(name, n, key):
    """The fixture is the full set (not a truncated copy) and spans every category / task the scorer branches on."""
    rows = _rows(name)
    cats = {r[key] for r in rows}
    assert len(rows) == n
    if key == "category":
        assert cats == {1, 2, 3, 4, 5}
    else:
        assert len(cats) == 11 and {"Computation", "Timeline", "Localization", "Extract"} <= cats
    assert {r["official_score"] for r in rows} >= {0.0, 1.0}
