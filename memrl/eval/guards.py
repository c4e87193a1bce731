"""Input guards and help text for `memrl eval` (kept apart from the engine so the hooks stay small).

- `LazyHelp`: `memrl eval --help` lists every EvalConfig key (default and one-line doc) and every policy and
  manager name, built only when help is asked for (`memrl --help` stays import-light).
- `check_compare_options` / `check_bootstrap`: `memrl eval compare --level/--samples` (and `bootstrap_samples`) out
  of range is a ConfigError: 0 resamples means no interval, a positive count must be enough for one.
- `check_skip_categories`: `skip_categories` must name categories of the data or its benchmark (a typo would
  skip nothing) and leave a question to evaluate.
- `check_benchmark`: the data's own benchmark (meta["benchmark"], or "synthetic" for `memrl synth` output)
  must match `benchmark=`: `memrl eval data=<synth>.jsonl` without `--config` would otherwise score synthetic
  data under the LoCoMo protocol (LoCoMo category names, LoCoMo's exclusions) without a word.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
from collections.abc import Sequence
from typing import Any

from memrl.config import ConfigError
from memrl.data.loaders import LOCOMO_CATEGORIES, TIMEDIAL_LEVELS
from memrl.data.question_split import category_keys, describe_categories
from memrl.eval.config import POLICY_ALIASES, EvalConfig
from memrl.eval.metrics import MIN_TAIL_RESAMPLES, min_bootstrap_samples
from memrl.policies.baselines import ANSWER_BASELINES, MANAGER_BASELINES

CONFIG_FOR = {"locomo": "configs/eval/locomo.yaml", "longmemeval": "configs/eval/longmemeval.yaml",
              "timedial": "configs/eval/timedial.yaml", "synthetic": "configs/eval/synthetic.yaml"}


DESCRIPTIONS = {
    "bm25": "BM25 top-1 among the candidates (the bank's memories), answered by the extractive reader",
    "bm25_verbatim": "bm25, answered with the memory's whole text (verbose on purpose; the demo's teacher)",
    "bm25_turns": "BM25 top-1 over every raw dialogue turn, extractive reader (was full_context; not an LLM)",
    "oracle_evidence": "ORACLE: reads the gold evidence turns, extractive reader",
    "gold_answer": "ORACLE: answers the gold answer (a sanity check of the scorer)",
    "abstain": "always 'Not mentioned in the conversation' (scores 1 on LoCoMo category 5)",
    "add_only": "stores every turn/fact as said; no updates, no deletes",
    "rule_based": "ORACLE on synthetic data: the text heuristic plus the world's gold entry keys",
    "gold_ops": "ORACLE: the gold ops of each step",
    "noisy_teacher": "ORACLE with noise: gold ops with a share error_rate of UPDATE/DELETE turned into mistakes",
}


def config_keys_help() -> str:
    """One line per EvalConfig key: name = default  # doc (from the dataclass source)."""
    docs: dict[str, str] = {}
    for line in inspect.getsource(EvalConfig).splitlines():
        m = re.match(r"^    (\w+): [^=]+=.*?#\s*(.*)$", line)
        if m:
            docs[m.group(1)] = m.group(2).strip()
    out = []
    for f in dataclasses.fields(EvalConfig):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        out.append(f"  {f.name} = {default!r}" + (f"  # {docs[f.name]}" if f.name in docs else ""))
    return "\n".join(out)


def policies_help() -> str:
    def first_line(cls: type) -> str:
        doc = DESCRIPTIONS.get(cls.name) or (cls.__doc__ or "").strip().split("\n")[0]
        return f"  {cls.name:<16} {doc}" if doc else f"  {cls.name}"

    lines = ["answer policies (policy=):"]
    lines += [first_line(c) for c in ANSWER_BASELINES.values()]
    lines += [f"  {a:<16} alias of {b}" for a, b in POLICY_ALIASES.items()]
    lines += ["  transformers:PATH | vllm:PATH | a checkpoint or `memrl train` run directory: an LLM answer agent",
              "managers (manager=; none: default_manager builds the bank):"]
    lines += [first_line(c) for c in MANAGER_BASELINES.values()]
    lines += ["  transformers:PATH | a checkpoint or run directory: an LLM memory manager",
              "  (results.json marks oracle policies and managers: protocol.oracle = true, with a note)"]
    return "\n".join(lines)


class LazyHelp(argparse.Action):
    """-h/--help that appends the config keys and the policy names to the parser's help."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: Any = argparse.SUPPRESS, help: str | None = "show this help (config keys, policies) and exit"):
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.epilog = ((parser.epilog or "") + "\n\nconfig keys (key=value; --config YAML sets the same keys):\n"
                         + config_keys_help() + "\n\n" + policies_help()
                         + "\n\nconfigs: " + ", ".join(CONFIG_FOR.values()))
        parser.print_help()
        parser.exit()


def check_compare_options(level: float, samples: int) -> None:
    if not 0.0 < level < 1.0:
        raise ConfigError(f"--level must be a confidence level in (0, 1) such as 0.95, got {level}")
    check_bootstrap(samples, level, "--samples")


def check_bootstrap(samples: int, level: float, what: str) -> None:
    """0 resamples = no interval; otherwise enough resamples for a percentile interval at `level`."""
    need = min_bootstrap_samples(level)
    if samples < 0 or 0 < samples < need:
        raise ConfigError(f"{what} must be 0 (no confidence intervals) or >= {need} for a {level:g} interval, got "
                          f"{samples}: with fewer resamples fewer than {MIN_TAIL_RESAMPLES} fall beyond each end of "
                          "the interval, so its ends are single extreme draws (1000, the default, is the usual choice)")


def known_categories(benchmark: str, convs: Sequence[Any]) -> dict[str, str]:
    """Category keys (names and ids) a question filter may name: the data's own, plus the benchmark's."""
    known: dict[str, str] = {}
    if benchmark == "locomo":
        for i, name in LOCOMO_CATEGORIES.items():
            known[str(i)], known[name] = f"{i} ({name})", name
    elif benchmark == "synthetic":
        from memrl.data_synth.config import (
            CATEGORY_IDS as SYNTH_CATEGORY_IDS,  # deferred: `memrl --help` imports this
        )

        for name, i in SYNTH_CATEGORY_IDS.items():
            known[str(i)], known[name] = f"{i} ({name})", name
    elif benchmark == "timedial":
        for task, level in TIMEDIAL_LEVELS.items():
            known[task], known[level] = task, level
    for key, shown in category_keys(convs).items():
        known.setdefault(key, shown)
    return known


def check_skip_categories(cfg: Any, convs: Sequence[Any]) -> None:
    """skip_categories names categories that exist (a typo would skip nothing) and leaves questions to evaluate."""
    if not cfg.skip_categories:
        return
    known = known_categories(cfg.benchmark, convs)
    unknown = [str(c) for c in cfg.skip_categories if str(c) not in known]
    if unknown:
        raise ConfigError(f"skip_categories: {', '.join(map(repr, unknown))} is not a category of "
                          f"{cfg.data or 'the data'} (benchmark {cfg.benchmark}); categories: "
                          f"{describe_categories(known)}")
    skip = {str(c) for c in cfg.skip_categories}
    if not any(str(q.category) not in skip and str(q.category_id) not in skip for c in convs for q in c.questions):
        raise ConfigError(f"skip_categories {sorted(skip)} leaves no question of {cfg.data or 'the data'} to evaluate")


def data_benchmark(convs: Sequence[Any]) -> str | None:
    """The one benchmark the conversations come from (None: unknown or mixed)."""
    kinds = set()
    for c in convs:
        meta = c.meta or {}
        kinds.add("synthetic" if meta.get("source") == "memrl.synth" else meta.get("benchmark"))
    return kinds.pop() if len(kinds) == 1 else None


def check_benchmark(cfg: Any, convs: Sequence[Any]) -> None:
    """Refuse to score data from one benchmark under another's protocol."""
    have = data_benchmark(convs)
    if have is None or have == cfg.benchmark:
        return
    hint = f"--config {CONFIG_FOR[have]}" if have in CONFIG_FOR else f"benchmark={have}"
    raise ConfigError(f"{cfg.data or 'the data'} holds {have} conversations but benchmark={cfg.benchmark!r} "
                      f"(the default without --config; it would apply the {cfg.benchmark} protocol): give {hint}")


__all__ = ["LazyHelp", "check_benchmark", "check_bootstrap", "check_compare_options", "check_skip_categories",
           "config_keys_help", "data_benchmark", "known_categories", "policies_help"]
