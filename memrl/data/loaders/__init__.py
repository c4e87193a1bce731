"""Benchmark loaders: LoCoMo, LongMemEval and TIME-Dial (verl records and released results) -> the schema.

This package's entry owns the registry and the dispatch, nothing format-specific: `LOADERS` maps the CLI's
format names to the readers, `load(fmt, path)` calls one, `load_conversations(path, format="auto")` is the one
reader every layer uses (the common-schema JSONL or a benchmark file), and `load_timedial` detects the
TIME-Dial layout (verl or question records -> `timedial`, released results -> `timedial_results`, a
time-range file -> an error saying to pass it as --time-ranges). The formats live below it, each importing
only downward: `locomo`, `longmemeval`, `timedial` < `timedial_results`, all on `common` (the import-linter
contract in pyproject.toml). Formats and quirks follow the sources (snap-research/LoCoMo,
xiaowu0162/LongMemEval, Memory-T1's TIME-Dial); the choices made are stated in each loader's docstring.

Every problem with the input raises `memrl.data.io.DataError` whose message names the file, the record
(its position and, once known, its id) and the field, e.g.
    locomo10.json: record 3 (sample_id 'conv-43'): qa[17].category: expected integer, got string '4'
Nothing else escapes for malformed input: loaders check every type before using a value, because a
KeyError or TypeError three calls deep tells a user nothing about which of 2,000 records is broken.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memrl.data.io import DataError, read_conversations
from memrl.data.loaders.common import read_records
from memrl.data.loaders.locomo import LOCOMO_CATEGORIES, clean_locomo_evidence, load_locomo
from memrl.data.loaders.longmemeval import load_longmemeval
from memrl.data.loaders.timedial import (
    TIMEDIAL_ANSWER_FORMATS,
    TIMEDIAL_LEVELS,
    is_results_record,
    read_id_map,
    timedial_conversation,
)
from memrl.data.loaders.timedial_results import (
    is_results_records,
    is_time_range_map,
    load_timedial_results,
    question_key,
    read_results,
    read_time_ranges,
)
from memrl.data.schema import Conversation
from memrl.data.validate import validate_conversations

__all__ = [
    "LOADERS",
    "LOCOMO_CATEGORIES",
    "TIMEDIAL_ANSWER_FORMATS",
    "TIMEDIAL_LEVELS",
    "clean_locomo_evidence",
    "FORMATS",
    "is_results_records",
    "is_time_range_map",
    "load",
    "load_conversations",
    "load_locomo",
    "load_longmemeval",
    "load_timedial",
    "load_timedial_results",
    "question_key",
    "read_results",
    "read_time_ranges",
]


# ---- TIME-Dial: one entry, three layouts -------------------------------------------------------------------
def load_timedial(
    path: str | Path, contexts: str | Path | None = None, time_ranges: str | Path | None = None
) -> list[Conversation]:
    """Load TIME-Dial as Memory-T1 prepares it for RL (verl records), or its question file plus contexts.

    The real files (time_dial_context_list_with_evidence_200_v2.json, time_dial_labeled_contexts.json and
    the verl JSON/Parquet built from them) were not available; this follows Memory-T1's converter
    (temporal_reasoning/convert_to_verl_v2.py @ fee86f5) and benchmarks.md 2.3, and the fixtures in
    tests/fixtures/timedial_* are written to that layout. What was inferred:

    - verl record: {data_source, prompt: [{role, content}], ability: Task, reward_model: {ground_truth:
      {answer, selected_sessions}, style}, extra_info: {index: Question ID, gold_selected_sessions,
      question_time_range: {start, end}, all_sessions: [{session_id: "session_<id>", session_time,
      is_relevant: "yes"|"no", utterances: [{speaker, text, utterance_time, event_time: {start, end},
      is_relevant}]}]}}. Parquet rows may hold extra_info (and ground_truth) as JSON strings.
    - Sessions come from extra_info.all_sessions (the whole context). Only when it is missing are they
      parsed from the prompt's session blocks, which hold just the sessions that fit the token budget.
      Either way `question.meta["prompt_session_ids"]` lists the sessions the prompt showed.
    - The question is the text after "**User Question:**\\n<timestamp>: " in the prompt; that timestamp is
      the converter's datetime.now(), not data, so question_time stays None and the range is time_range.
      (The converter writes 2021-01-01..2025-12-31 for a question with no annotated range; that default
      cannot be told apart from a real range and is kept as given.)
    - Question file form (`contexts` given): [{"Question ID", "Question", "Gold Answer", "Task", "Level",
      "Context", "Dataset Name", "Evidence": [{session_id, utterance, ...}]}] with contexts
      {Context: {session_id: {session_date, content: [{speaker, utterance, utterance_date, events}]}}};
      evidence utterances are matched by text as the converter does. `time_ranges` is the optional
      question_time_range_annotated JSON keyed by question id.

    Mapping: one Conversation per question (conversation_id = question id); sessions sorted by time and
    renumbered "session_<i>" with the source id in meta["original_session_id"]; turn ids "D<i>:<k>".
    category = task, category_id = level ("Level 1".."3", from the record or TIMEDIAL_LEVELS); the question
    text keeps its option lines as the model saw them and `options` is the parsed letter -> text view;
    meta["answer_format"] says how the gold is scored. evidence_session_ids = the gold sessions (their source
    ids in meta["original_evidence_session_ids"]), evidence_turn_ids = the utterances marked relevant.
    """
    path = Path(path)
    context_map = read_id_map(Path(contexts), "contexts") if contexts is not None else None
    range_map = read_time_ranges(time_ranges) if time_ranges is not None else None  # unreadable entries skipped
    convs: list[Conversation] = []
    records: list[str] = []
    seen: set[str] = set()
    for where, rec in read_records(path):
        if is_results_record(rec):
            # Memory-T1's released result files (timedial_results): detected by their record keys.
            return load_timedial_results(path, time_ranges=time_ranges, contexts=contexts)
        conv = timedial_conversation(rec, where, path, context_map, contexts, range_map)
        if conv.conversation_id in seen:
            raise where.fail("", f"duplicate question id {conv.conversation_id!r}")
        seen.add(conv.conversation_id)
        convs.append(conv)
        records.append(where.record)
    source = f"{path} (contexts {contexts})" if contexts is not None else str(path)
    return validate_conversations(convs, source, records)


# ---- registry ----------------------------------------------------------------------------------------------
LOADERS: dict[str, Callable[..., list[Conversation]]] = {
    "locomo": load_locomo,
    "longmemeval": load_longmemeval,
    "timedial": load_timedial,
    "timedial_results": load_timedial_results,
}


def load(fmt: str, path: str | Path, **options: Any) -> list[Conversation]:
    """Load `path` with the loader named `fmt` (a key of LOADERS); options go to it (TIME-Dial only)."""
    if fmt not in LOADERS:
        raise DataError(f"unknown format {fmt!r}; expected one of {sorted(LOADERS)}")
    return LOADERS[fmt](path, **options)


FORMATS = ("auto", "jsonl", *LOADERS)


def load_conversations(path: str | os.PathLike, format: str = "auto", split: str | None = None,
                       **options: Any) -> list[Conversation]:
    """The one way to read conversations: every reader (data, envs, train, eval, synth) calls this.

    format: "jsonl" (the common schema: a JSONL file or a `datasets` directory), a benchmark loader
    ("locomo" | "longmemeval" | "timedial", options go to it), or "auto" (= "jsonl"; benchmark files need
    their format named). split: with a directory, read `<dir>/<split>.jsonl` (a `memrl synth` output).
    """
    if format not in FORMATS:
        raise DataError(f"unknown format {format!r}; expected one of {list(FORMATS)}")
    p = Path(path)
    if format in LOADERS:
        return load(format, p, **options)
    if split is not None and p.is_dir():
        f = p / f"{split}.jsonl"
        if not f.exists():
            raise DataError(f"{p}: no {split}.jsonl (expected a `memrl synth` output directory)")
        p = f
    return read_conversations(p)
