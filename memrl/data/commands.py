"""`memrl data convert` and `memrl data stats`: benchmark files -> the common schema, and what a file holds.

    memrl data convert --format locomo --input locomo10.json --output data/locomo10.jsonl
    memrl data convert --format timedial --input questions.json --contexts contexts.json --output data/td/
    memrl data stats data/locomo10.jsonl [--json]

`--output` ending in ".jsonl" (or any file name) writes one conversation per line; an output that ends in
"/" or is an existing directory becomes a Hugging Face `datasets` directory (save_to_disk) with a dataset
card. Both are written atomically: if loading or writing fails, the previous output (if any) is untouched.
Errors print `error: <message>` on stderr and exit with code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memrl.data.io import (
    DataError,
    format_summary,
    summarize,
    to_hf_dataset,
    write_conversations,
)
from memrl.data.loaders import LOADERS, load_conversations
from memrl.data.question_split import parse_fractions, write_question_split
from memrl.data.schema import Conversation, SchemaError

# What a converted dataset's card says about where the data came from (the sources' repositories and papers).
_PROVENANCE = {
    "locomo": "LoCoMo (snap-research/LoCoMo; Maharana et al., ACL 2024). License: CC BY-NC 4.0 -- "
    "evaluation use, attribution required, no commercial use.",
    "longmemeval": "LongMemEval (xiaowu0162/LongMemEval; Wu et al., ICLR 2025). See the source's license.",
    "timedial": "TIME-Dial as prepared by Memory-T1 (Elvin-Yiming-Du/Memory-T1; README says MIT). TIME-Dial "
    "contains LoCoMo10 sessions: do not train on one and call the other held-out.",
    "timedial_results": "Memory-T1's released TIME-Dial result files (Elvin-Yiming-Du/Memory-T1; README says MIT, "
    "no LICENSE file): questions, golds and the released predictions (question meta 'prediction').",
}


def convert(
    fmt: str,
    input: str | os.PathLike,
    output: str | os.PathLike,
    *,
    contexts: str | os.PathLike | None = None,
    time_ranges: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Read `input` (`fmt`), write the common schema to `output` (JSONL or datasets dir), return a summary."""
    options: dict[str, Any] = {}
    if contexts is not None or time_ranges is not None:
        if fmt not in ("timedial", "timedial_results"):
            raise DataError("--contexts and --time-ranges apply only to --format timedial / timedial_results")
        options = {"contexts": contexts, "time_ranges": time_ranges}
    convs = load_conversations(input, fmt, **options)  # raises before anything is written
    out = Path(output)
    if _wants_dataset_dir(output):
        _save_dataset_dir(convs, out, fmt, Path(input))
    else:
        write_conversations(out, convs)
    return {"format": fmt, "input": str(input), "output": str(out), **summarize(convs)}


def _load_split_input(path: str, fmt: str) -> list[Conversation]:
    """split-questions' input; a benchmark file read as common-schema JSONL gets a hint to name its format."""
    try:
        return load_conversations(path, fmt)
    except DataError as e:
        p = Path(path)
        if fmt == "auto" and p.is_file() and p.suffix.lower() == ".json":
            raise DataError(f"{path}: not common-schema JSONL (read as it, it fails: {e}); for a benchmark file name "
                            f"its format: --format {' | '.join(sorted(LOADERS))} (e.g. --format locomo for LoCoMo's "
                            "locomo10.json or conv-26.json)") from None
        raise


def stats(path: str | os.PathLike) -> dict[str, Any]:
    """Summary (conversations, sessions, turns, questions per category) of a converted file or dataset."""
    return {"path": str(path), **summarize(load_conversations(path))}


def _wants_dataset_dir(output: str | os.PathLike) -> bool:
    text = os.fspath(output)
    return text.endswith(("/", os.sep)) or Path(text).is_dir()


def _save_dataset_dir(convs: list[Conversation], out: Path, fmt: str, source: Path) -> None:
    """save_to_disk into a temporary sibling, then swap it in, so a failure never leaves half a dataset."""
    if out.exists() and any(out.iterdir()) and not (out / "dataset_info.json").exists():
        raise DataError(f"{out}: refusing to replace a non-empty directory that is not a saved dataset")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it owner-only; the dataset should get ordinary permissions
    old = None
    try:
        _quietly_save(to_hf_dataset(convs), tmp)
        (tmp / "README.md").write_text(_dataset_card(convs, fmt, source), encoding="utf-8")
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / "data")
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and (old / "data").exists() and not out.exists():
            os.replace(old / "data", out)  # put the previous dataset back
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _quietly_save(ds: Any, path: Path) -> None:
    # save_to_disk draws a progress bar on stderr; a CLI that prints a summary does not need it.
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        ds.save_to_disk(str(path))
    finally:
        if not was_disabled:
            enable_progress_bars()


def _dataset_card(convs: list[Conversation], fmt: str, source: Path) -> str:
    s = summarize(convs)
    cats = "\n".join(f"| {k} | {v} |" for k, v in s["questions_by_category"].items())
    return (
        f"# {source.stem} ({fmt}) in memrl's common schema\n\n"
        f"Converted from `{source.name}` by `memrl data convert --format {fmt}`. One row per conversation: "
        "`json` holds the conversation (memrl.data.schema.Conversation.to_dict), the other columns are "
        "counts for filtering. Read it back with `memrl.data.io.read_hf`.\n\n"
        f"Source: {_PROVENANCE[fmt]}\n\n"
        f"{s['conversations']} conversations, {s['sessions']} sessions, {s['turns']} turns, "
        f"{s['questions']} questions.\n\n| category | questions |\n|---|---|\n{cats}\n"
    )


# ---- command line ------------------------------------------------------------------------------------------
def add_parser(subparsers: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    """Mount `data convert|stats` on a parent CLI's subparsers; the parser's default `func` is `main`."""
    parser = subparsers.add_parser(
        "data",
        help="convert benchmark files to the common schema; summarize them",
        description=__doc__.split("\n\n")[0],
    )
    _add_arguments(parser)
    parser.set_defaults(func=main)
    return parser


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", required=True, metavar="{convert,stats,split-questions}")
    c = sub.add_parser("convert", help="benchmark file -> common-schema JSONL (or a datasets directory)")
    c.add_argument("--format", required=True, choices=sorted(LOADERS), help="the input's format")
    c.add_argument("--input", required=True, help="benchmark file (.json, .jsonl; TIME-Dial also .parquet)")
    c.add_argument(
        "--output",
        required=True,
        help="output .jsonl file, or a directory (ending in '/' or existing) for a datasets dir",
    )
    c.add_argument("--contexts", help="TIME-Dial question-file form only: the contexts JSON")
    c.add_argument(
        "--time-ranges", help="TIME-Dial question-file form and results files: question_time_range_annotated JSON"
    )
    c.add_argument("--json", action="store_true", help="print the summary as JSON")
    q = sub.add_parser("split-questions", help="one dataset's questions -> disjoint slices (train/validation) "
                                               "over the same dialogues, stratified by category")
    q.add_argument("--input", required=True, help="a benchmark file or common-schema JSONL")
    q.add_argument("--format", default="auto", choices=["auto", *sorted(LOADERS)],
                   help="the input's format (auto: common-schema JSONL)")
    q.add_argument("--output-dir", required=True, help="writes <slice>.jsonl per slice and split.json")
    q.add_argument("--fractions", default="train=0.5,validation=0.5", help="NAME=FRACTION,... summing to 1")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--skip-categories", default="", help="comma-separated category ids/names left out (e.g. 5)")
    q.add_argument("--json", action="store_true", help="print the summary as JSON")
    s = sub.add_parser("stats", help="summary of a converted file (JSONL or datasets directory)")
    s.add_argument("path")
    s.add_argument("--json", action="store_true", help="print the summary as JSON")


def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    """Run `data convert|stats` from parsed args (as mounted by memrl.cli) or from an argv list."""
    if not isinstance(args, argparse.Namespace):
        parser = argparse.ArgumentParser(prog="memrl data", description=__doc__.split("\n\n")[0])
        _add_arguments(parser)
        args = parser.parse_args(args)
    try:
        if args.data_command == "convert":
            summary = convert(
                args.format, args.input, args.output, contexts=args.contexts, time_ranges=args.time_ranges
            )
            header = f"wrote {summary['conversations']} conversations to {summary['output']}"
        elif args.data_command == "split-questions":
            fractions = parse_fractions(args.fractions)
            convs = _load_split_input(args.input, args.format)
            summary = write_question_split(convs, args.output_dir, fractions, args.seed,
                                           [c.strip() for c in args.skip_categories.split(",") if c.strip()],
                                           source=args.input)
            print(json.dumps({k: {"questions": v["questions"]} for k, v in summary["slices"].items()})
                  if not args.json else json.dumps(summary, indent=2))
            return 0
        else:
            summary = stats(args.path)
            header = str(args.path)
    except (DataError, SchemaError, OSError, UnicodeError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(
        json.dumps(summary, indent=2, ensure_ascii=False)
        if args.json
        else f"{header}\n{format_summary(summary)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
