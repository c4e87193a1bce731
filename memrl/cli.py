"""`memrl` command line: one subcommand per job; each lives next to the code it runs.

Every subcommand module exposes `add_parser(subparsers)` (registers its argparse parser and sets
`func`) so that this file stays a table of contents. Imports are lazy: `memrl data stats` must not pay
for importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from memrl import __version__
from memrl.errors import MemrlError

# (subcommand, module that registers it, one-line help)
COMMANDS = [
    ("data", "memrl.data.commands", "convert benchmarks to the common schema; dataset statistics"),
    ("synth", "memrl.data_synth.commands", "synthesize training data offline; mine minimal evidence"),
    ("train", "memrl.train.commands", "SFT / GRPO / PPO training from a recipe"),
    ("eval", "memrl.eval.commands", "evaluate baselines and checkpoints; compare runs"),
    ("demo", "memrl.demo", "the end-to-end CPU demo (synthesize, SFT, GRPO, PPO, evaluate)"),
    ("models", "memrl.models_commands", "prepare, list and convert real pretrained models (offline, sha256-verified)"),
    ("bench", "memrl.bench", "performance figures, each as a ratio to a reference measured in the same run"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memrl", description="Train LLM memory agents with RL.")
    parser.add_argument("--version", action="version", version=f"memrl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module, _help in COMMANDS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name == module:  # not built in this checkout: do not offer it
                continue
            raise
        mod.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except MemrlError as e:  # a complete message (file, key or setting, and what to do): no traceback
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
