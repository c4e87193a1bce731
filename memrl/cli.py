"""`memrl` command line: one subcommand per job; each lives next to the code it runs.

Every subcommand module exposes `add_parser(subparsers)` (registers its argparse parser and sets `func`), and
`subcommand_modules` below imports each of them by name, so this file is the table of contents and
import-linter sees every edge. The imports sit inside that function so that `import memrl.cli` stays cheap;
none of the command modules imports torch at module level, so `memrl data stats` never pays for it.
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

from memrl import __version__
from memrl.errors import MemrlError


def subcommand_modules() -> list[ModuleType]:
    """The modules of `memrl data | synth | train | eval | demo | models | bench`, in help order."""
    # deferred: building the parser is the only thing that needs them (`import memrl.cli` stays cheap)
    from memrl import bench, demo, models_commands
    from memrl.data import commands as data_commands
    from memrl.data_synth import commands as synth_commands
    from memrl.eval import commands as eval_commands
    from memrl.train import commands as train_commands

    return [data_commands, synth_commands, train_commands, eval_commands, demo, models_commands, bench]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memrl", description="Train LLM memory agents with RL.")
    parser.add_argument("--version", action="version", version=f"memrl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in subcommand_modules():
        module.add_parser(sub)
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
