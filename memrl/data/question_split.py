"""Split one benchmark's questions into disjoint train / validation / test slices over the same dialogues.

Memory-R1 trains on LoCoMo's conv-26 and tests on other conversations; tuning needs a validation slice that
is not the training questions. `split_questions` keeps every conversation whole (the dialogue is the
environment) and deals its questions into named slices, stratified by category and seeded, so each slice
has the category mix of the whole. Questions of `skip_categories` are dropped from every slice. Nothing is written
when the input has no questions, a skipped category is not one of the input's (a typo would skip nothing), the
skip leaves no question, or a slice would be empty (`check_split`).

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
from memrl.data.loaders.locomo import LOCOMO_CATEGORIES
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
        if name.strip() in out:
            raise DataError(f"--fractions: slice {name.strip()!r} is named twice ({spec!r}); name each slice once")
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


def category_keys(convs: Sequence[Conversation]) -> dict[str, str]:
    """Every category key the questions carry (ids and names) -> how to show it."""
    keys: dict[str, str] = {}
    for conv in convs:
        for q in conv.questions:
            keys.setdefault(str(q.category), str(q.category))
            if q.category_id is not None:
                keys.setdefault(str(q.category_id), f"{q.category_id} ({q.category})")
    if any((c.meta or {}).get("benchmark") == "locomo" for c in convs):  # a LoCoMo category may be absent already
        for i, name in LOCOMO_CATEGORIES.items():
            keys.setdefault(str(i), f"{i} ({name})")
            keys.setdefault(name, name)
    return keys


def describe_categories(keys: dict[str, str]) -> str:
    """"1 (multi_hop), 2 (temporal), ..." from category_keys' values (a name shown with its id is not repeated)."""
    shown = set(keys.values())
    shown = {v for v in shown if not any(w != v and w.endswith(f"({v})") for w in shown)}
    return ", ".join(sorted(shown, key=lambda v: (not v[:1].isdigit(), v)))


def check_split(convs: Sequence[Conversation], slices: dict[str, list[Conversation]], fractions: dict[str, float],
                skip_categories: Sequence[str], source: str = "the input") -> None:
    """Refuse what would write an empty or wrong split: no questions, unknown categories, empty slices."""
    total = sum(len(c.questions) for c in convs)
    if not total:
        raise DataError(f"{source}: holds no questions ({len(convs)} conversations); nothing to split")
    keys = category_keys(convs)
    unknown = [str(c) for c in skip_categories if str(c) not in keys]
    if unknown:
        raise DataError(f"--skip-categories: {', '.join(map(repr, unknown))} is not a category of {source}; its "
                        f"categories: {describe_categories(keys)}")
    kept = sum(len(c.questions) for part in slices.values() for c in part)
    if not kept:
        raise DataError(f"--skip-categories {','.join(map(str, skip_categories))} leaves none of the {total} "
                        f"questions of {source}; nothing to split")
    empty = [name for name, part in slices.items() if not any(c.questions for c in part)]
    if empty:
        raise DataError(f"--fractions: slice {empty[0]!r} ({fractions[empty[0]]:g}) would get none of the {kept} "
                        "questions (each category's share is rounded); give it a larger fraction")


def shared_questions(train: Sequence[Conversation], held_out: Sequence[Conversation]) -> list[str]:
    """The question ids of `held_out` that `train` also holds: the same id, or the same question text in the same
    conversation (a copy under a new id still leaks its answer). Empty for disjoint slices."""
    def norm(text: str) -> str:
        return " ".join(text.lower().split())

    ids = {q.question_id for c in train for q in c.questions}
    texts = {(c.conversation_id, norm(q.question)) for c in train for q in c.questions}
    return [q.question_id for c in held_out for q in c.questions
            if q.question_id in ids or (c.conversation_id, norm(q.question)) in texts]


def plan_question_split(convs: Sequence[Conversation], fractions: dict[str, float], seed: int = 0,
                        skip_categories: Sequence[str] = (), source: str = "the input") -> dict[str, list[Conversation]]:
    """The slices `write_question_split` would write, checked (`check_split`), without writing them."""
    slices = split_questions(convs, fractions, seed, skip_categories)
    check_split(convs, slices, fractions, skip_categories, source)
    return slices


def write_question_split(convs: Sequence[Conversation], output_dir: str | Path, fractions: dict[str, float],
                         seed: int = 0, skip_categories: Sequence[str] = (), source: str = "the input") -> dict[str, Any]:
    out = Path(output_dir)
    for p in (out, *out.parents):
        if p.exists() and not p.is_dir():
            raise DataError(f"--output-dir {out}: {p} is a file, not a directory; give a directory for the slices")
    slices = plan_question_split(convs, fractions, seed, skip_categories, source)  # checked before anything is written
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"seed": seed, "fractions": fractions, "skip_categories": list(skip_categories),
                               "slices": {}}
    for name, part in slices.items():
        write_conversations(out / f"{name}.jsonl", part)
        summary["slices"][name] = {"questions": sum(len(c.questions) for c in part),
                                   "question_ids": [q.question_id for c in part for q in c.questions]}
    write_json(out / "split.json", summary)
    return summary
