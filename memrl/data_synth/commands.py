"""`memrl synth` and `memrl synth distill`.

    memrl synth --config configs/synth/default.yaml out=data/synth num_conversations=1000 seed=0 [knob=value ...]
    memrl synth --config configs/synth/default.yaml executor=ray num_workers=2
    memrl synth distill --input data/synth/train.jsonl --output data/synth/train.min.jsonl
                        [--reader heuristic|transformers:PATH] [--threshold 0.5 | --judge transformers:PATH]
                        [--candidates gold|bm25] [--top-k 10] [--executor local|ray] [--num-workers N]

`memrl synth` writes (or resumes) a dataset directory; knobs are SynthConfig fields (memrl/data_synth/config.py).
A misspelt or invalid knob exits with code 2 and a message naming it. `distill` reads any common-schema JSONL
file or `datasets` directory (a synth output directory reads its hf/ subdirectory) and writes JSONL with
`minimal_evidence` filled in.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from memrl.config import ConfigError, load_config
from memrl.data.io import DataError, write_conversations
from memrl.data.loaders import load_conversations
from memrl.data_synth.config import SynthConfig
from memrl.data_synth.distill import distill
from memrl.data_synth.synth import SynthError, run_synthesis
from memrl.policies.judge import make_judge


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("synth", help="synthesize training data offline; mine minimal evidence",
                                   description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                   epilog=__doc__.split("\n\n", 1)[1])
    _add_arguments(parser)
    parser.set_defaults(func=main)
    return parser


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    # One positional list: either "distill ..." or key=value overrides (argparse cannot mix an optional
    # subcommand with free positionals, so `main` dispatches on the first word).
    parser.add_argument("--config", help="YAML file with SynthConfig knobs (configs/synth/default.yaml)")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="knob=value overrides, or: distill ...")


def _distill_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="memrl synth distill",
                                description="greedy leave-one-out minimal sufficient evidence per question")
    p.add_argument("--input", required=True, help="common-schema JSONL file or datasets directory")
    p.add_argument("--output", required=True, help="output JSONL file")
    p.add_argument("--reader", default="heuristic", help="heuristic (default) or a backend spec: transformers:PATH")
    p.add_argument("--threshold", type=float, default=0.5, help="LoCoMo F1 at or above which an answer is correct")
    p.add_argument("--judge", help="backend spec of an LLM judge (Mem0's CORRECT/WRONG) instead of the F1 threshold")
    p.add_argument("--judge-cache", help="JSONL cache of judge verdicts (reused across runs)")
    p.add_argument("--candidates", default="gold", choices=["gold", "bm25"],
                   help="start from gold evidence (BM25 where a question has none), or always from BM25 top-k")
    p.add_argument("--top-k", type=int, default=10, help="BM25 candidates over [question; answer]")
    p.add_argument("--executor", default="local", choices=["local", "ray"])
    p.add_argument("--num-workers", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    return p


def _read_input(path: str):

    p = Path(path)
    if p.is_dir() and (p / "hf").is_dir() and not (p / "dataset_dict.json").exists():
        p = p / "hf"  # a `memrl synth` output directory
    return load_conversations(p)


def _llm_factories(args) -> dict:
    """The generation backend and judge factories distillation needs when a reader or judge is a model spec:
    the command wires them in, data_synth imports no policy."""
    out = {}
    if args.reader != "heuristic" or args.judge:
        from memrl.policies.backends import make_backend  # deferred: imports torch

        out = {"make_backend": make_backend, "make_judge": make_judge}
    return out


def run_distill(argv: Sequence[str]) -> int:

    args = _distill_parser().parse_args(list(argv))
    convs = _read_input(args.input)
    try:
        out, summary = distill(convs, reader=args.reader, threshold=args.threshold, top_k=args.top_k,
                               candidates=args.candidates, executor=args.executor, num_workers=args.num_workers,
                               judge=args.judge, judge_cache=args.judge_cache, **_llm_factories(args))
    except ValueError as e:
        raise DataError(str(e)) from None
    write_conversations(args.output, out)
    summary["output"] = args.output
    print(json.dumps(summary, indent=2) if args.json else
          f"wrote {summary['conversations']} conversations to {args.output}; per-question status {summary['status']}; "
          f"mean candidates {summary['mean_candidates_ok']} -> minimal {summary['mean_minimal_ok']}")
    return 0


def load_synth_config(config_file: str | None, overrides: Sequence[str]):

    return load_config(SynthConfig, config_file, list(overrides))  # calls cfg.validate()


def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    if not isinstance(args, argparse.Namespace):
        parser = argparse.ArgumentParser(prog="memrl synth", description=__doc__.split("\n\n")[0])
        _add_arguments(parser)
        args = parser.parse_args(args)
    rest = list(args.rest or [])
    if rest[:1] == ["distill"]:
        return run_distill(rest[1:])
    config_file = args.config
    overrides = []
    i = 0
    while i < len(rest):  # --config may also come after the overrides (REMAINDER swallowed it)
        if rest[i] == "--config" and i + 1 < len(rest):
            config_file = rest[i + 1]
            i += 2
            continue
        if rest[i].startswith("--config="):
            config_file = rest[i].split("=", 1)[1]
        else:
            overrides.append(rest[i])
        i += 1

    cfg = load_synth_config(config_file, overrides)
    make_backend = None
    if cfg.paraphrase:  # the command wires the generation backend in; data_synth itself imports none
        from memrl.policies.backends import make_backend  # deferred: imports torch
    try:
        stats = run_synthesis(cfg, log=lambda m: print(m, file=sys.stderr), make_backend=make_backend)
    except SynthError as e:
        raise ConfigError(str(e)) from None
    print(json.dumps({k: stats[k] for k in ("conversations", "sessions", "turns", "questions",
                                            "questions_by_category", "gold_ops_by_type")}, indent=2))
    return 0


if __name__ == "__main__":
    from memrl.config import ConfigError
    from memrl.data.io import DataError

    try:
        raise SystemExit(main())
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2)
