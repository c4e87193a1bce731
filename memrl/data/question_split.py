"""Split one benchmark's questions into disjoint train / validation / test slices over the same dialogues.

Memory-R1 trains on LoCoMo's conv-26 and tests on other conversations; tuning needs a validation slice that
is not the training questions. `split_questions` keeps every conversation whole (the dialogue is the
environment) and deals its questions into named slices, stratified by category and seeded, so each slice
has the category mix of the whole. Questions of `skip_categories` are dropped from every slice.

    memrl data split-questions --input runs/data/conv26.jsonl --output-dir runs/data/conv26_split \
        --fractions train=0.6,validation=0.4 --seed 0

writes `<output-dir>/<slice>.jsonl` (what `data.path=<output-dir>` and `data.train_split` read) and
`split.json` (the question ids of each slice, the seed and the fractions).
"""

from __future__ import annotations

import dataclasses
import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memrl.data.io import write_conversations
from memrl.data.schema import Conversation, DataError
from memrl.files import write_json


def parse_fractions(spec: str) -> dict[str, float]:
    """"train=0.6,validation=0.4" -> {"train": 0.6, "validation": 0.4}; they must be positive and sum to 1."""
    out: dict[str, float] = {}
    for part in [p for p in spec.split(",") if p.strip()]:
        name, sep, value = part.partition("=")
        try:
            frac = float(value)
        except ValueError:
            frac = -1.0
        if not sep or not name.strip() or not frac > 0:
            raise DataError(f"--fractions: {part!r} is not NAME=FRACTION with a fraction > 0")
        out[name.strip()] = frac
    if len(out) < 2 or abs(sum(out.values()) - 1.0) > 1e-6:
        raise DataError(f"--fractions: need two or more slices summing to 1, got {out}")
    return out


def split_questions(convs: Sequence[Conversation], fractions: dict[str, float], seed: int = 0,
                    skip_categories: Sequence[str] = ()) -> dict[str, list[Conversation]]:
    """{slice: conversations with that slice's questions}; every question lands in exactly one slice."""
    skip = {str(c) for c in skip_categories}
    by_cat: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for ci, conv in enumerate(convs):
        for qi, q in enumerate(conv.questions):
            if str(q.category_id) in skip or str(q.category) in skip:
                continue
            by_cat[str(q.category_id if q.category_id is not None else q.category)].append((ci, qi))
    rng = random.Random(f"split-questions:{seed}")
    names = list(fractions)
    assigned: dict[tuple[int, int], str] = {}
    for cat in sorted(by_cat):
        items = by_cat[cat]
        rng.shuffle(items)
        start = 0
        for k, name in enumerate(names):  # the last slice takes the rounding remainder
            n = len(items) - start if k == len(names) - 1 else round(fractions[name] * len(items))
            for key in items[start:start + n]:
                assigned[key] = name
            start += n
    out: dict[str, list[Conversation]] = {name: [] for name in names}
    for name in names:
        for ci, conv in enumerate(convs):
            qs = [q for qi, q in enumerate(conv.questions) if assigned.get((ci, qi)) == name]
            if qs:
                out[name].append(dataclasses.replace(conv, questions=qs))
    return out


def write_question_split(convs: Sequence[Conversation], output_dir: str | Path, fractions: dict[str, float],
                         seed: int = 0, skip_categories: Sequence[str] = ()) -> dict[str, Any]:
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    slices = split_questions(convs, fractions, seed, skip_categories)
    summary: dict[str, Any] = {"seed": seed, "fractions": fractions, "skip_categories": list(skip_categories),
                               "slices": {}}
    for name, part in slices.items():
        write_conversations(out / f"{name}.jsonl", part)
        summary["slices"][name] = {"questions": sum(len(c.questions) for c in part),
                                   "question_ids": [q.question_id for c in part for q in c.questions]}
    write_json(out / "split.json", summary)
    return summary
