"""`memrl eval`: evaluate a policy (behind an optional manager) with a pinned protocol; compare runs.

    memrl eval --config configs/eval/locomo.yaml data=locomo10.json policy=bm25 out=runs/eval/bm25
    memrl eval --config configs/eval/synthetic.yaml data=data/synth/test.jsonl policy=bm25 manager=rule_based
    memrl eval --config configs/eval/locomo.yaml data=data/locomo/conv-26.json policy=transformers:runs/demo
    memrl eval compare runs/eval/bm25 runs/eval/oracle [--metric locomo_f1] [--out cmp.md]

Every key of `EvalConfig` (memrl/eval/config.py, one line of documentation each) can be given as key=value.
A bad key or value exits with code 2 (ConfigError), as do unreadable data or result files (DataError).
Imports are lazy: this module is imported by `memrl --help`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

from memrl.config import load_config
from memrl.eval.config import EvalConfig
from memrl.eval.engine import run_eval
from memrl.eval.report import compare, fmt, format_protocol, summary_table
from memrl.files import check_output_path
from memrl.locks import hold_directory


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="evaluate baselines and checkpoints; compare runs",
        description="memrl eval --config configs/eval/<benchmark>.yaml data=FILE policy=... [manager=...] "
                    "[out=DIR] [key=value ...]\n"
                    "memrl eval compare RUN_A RUN_B ... [--metric M] [--out FILE]",
        formatter_class=argparse.RawDescriptionHelpFormatter, add_help=False)
    from memrl.eval.guards import LazyHelp

    p.add_argument("-h", "--help", action=LazyHelp)
    p.add_argument("--config", help="YAML file of EvalConfig keys (configs/eval/*.yaml)")
    p.add_argument("--json", action="store_true", help="print results.json instead of the summary table")
    # REMAINDER: `compare` brings its own options (--metric, --out) that this parser must not reject.
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="key=value | compare RUN ...")
    p.set_defaults(func=run)


def _eval_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="memrl eval")
    p.add_argument("--config")
    p.add_argument("--json", action="store_true")
    p.add_argument("overrides", nargs="*")
    return p.parse_args(argv)


def _compare_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="memrl eval compare",
                                description="Runs side by side; differences to the first run with paired bootstrap CIs.")
    p.add_argument("runs", nargs="+", help="evaluation run directories (or their results.json)")
    p.add_argument("--metric", default=None, help="only this metric (default: every metric all runs have)")
    p.add_argument("--out", default=None, help="write the table here (markdown; JSON if it ends in .json)")
    p.add_argument("--samples", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--level", type=float, default=0.95, help="confidence level")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    rest = list(args.args or [])
    if rest and rest[0] == "compare":

        c = _compare_args(rest[1:])
        from memrl.eval.guards import check_compare_options

        check_compare_options(c.level, c.samples)
        if c.out:  # a file in the way, a directory given, an unwritable place: before reading any run
            check_output_path(c.out, "--out", directory=False)
        md, _ = compare(c.runs, metric=c.metric, out=c.out, samples=c.samples, level=c.level)
        print(md)
        if c.out:
            print(f"\nwritten: {c.out}", file=sys.stderr)
        return 0
    parsed = _eval_args(rest)
    config = parsed.config or args.config

    cfg = load_config(EvalConfig, config, parsed.overrides)
    with hold_directory(cfg.out, "memrl eval") if cfg.out else contextlib.nullcontext():  # one eval per out=
        results = run_eval(cfg)
    if parsed.json or args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(format_protocol(results["protocol"]))
    print()
    print(summary_table(results))

    ops = results.get("ops")
    if ops:
        print(f"\nops: manager {ops['manager']}: op accuracy {fmt(ops['op_accuracy'])}, invalid-id rate "
              f"{fmt(ops['invalid_id_rate'])}, format failures {fmt(ops['format_failure_rate'])}, memory size "
              f"{fmt(ops['memory_size'], 1)} (gold {fmt(ops['gold_memory_size'], 1)})")
    eff = results["efficiency"]
    if eff["tokens_read_per_answer"] is not None:
        print(f"\ntokens read per answer {eff['tokens_read_per_answer']:.1f}; latency per question "
              f"{eff['latency_s_per_question'] * 1000:.2f} ms; wall {eff['wall_s']:.1f} s "
              f"({eff['conversations_from_cache']} conversations from cache)")
    if cfg.out:
        print(f"written: {cfg.out}/results.json, report.md, predictions.jsonl, plots")
    return 0
