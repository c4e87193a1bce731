"""`memrl demo`: the end-to-end CPU demo.

- `outcome.py` (the default, `make demo`): the outcome-reward protocol for the answer agent on a real model: raw
  dialogue in, outcome reward only, GRPO and PPO against the start policy, baselines and the shuffled-reward
  control, with paired CIs (`configs/demo/default.yaml` reduced, `configs/demo/full.yaml` full).
- `oracle_tiny.py` (`memrl demo --config configs/demo/oracle_tiny.yaml`): the earlier tiny-model demo of both
  policies. Its manager reads gold facts and gold-key tags and is rewarded for agreeing with gold ops: it shows
  the machinery (SFT, GRPO, PPO, resume), not learning from outcomes.

A config file picks the pipeline with its `pipeline:` key (default "outcome").
"""

from __future__ import annotations

import argparse

from memrl.config import ConfigError, load_config, read_config_file
from memrl.demo.oracle_tiny import DemoConfig, run_demo
from memrl.demo.outcome import OutcomeDemoConfig, check_outcome_demo, run_outcome_demo
from memrl.locks import hold_directory


def _pipeline(config_file: str | None, overrides: list[str]) -> str:
    name = "outcome"
    if config_file is not None:  # the same reading (and one-line errors) as load_config's
        name = str(read_config_file(config_file).get("pipeline", name))
    for o in overrides:
        if o.startswith("pipeline="):
            name = o.split("=", 1)[1]
    if name not in ("outcome", "oracle_tiny"):
        raise ConfigError(f"pipeline: {name!r} is not one of ['outcome', 'oracle_tiny']")
    return name


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="the end-to-end CPU demo",
        description="Default: outcome-reward RL (GRPO, PPO) for the answer agent on SmolLM2-135M-Instruct with "
                    "LoRA, against the start policy, baselines and a shuffled-reward control. "
                    "--config configs/demo/oracle_tiny.yaml: the tiny-model demo with gold inputs. "
                    "key=value overrides the config.")
    p.add_argument("--config", default=None, help="YAML file (configs/demo/*.yaml)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. seeds=[0,1,2] out=runs/demo3")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if _pipeline(args.config, list(args.overrides)) == "oracle_tiny":
        cfg = load_config(DemoConfig, args.config, args.overrides)
        with hold_directory(cfg.out, "memrl demo"):  # one demo per out= at a time
            run_demo(cfg)
        return 0
    outcome = load_config(OutcomeDemoConfig, args.config, args.overrides)
    check_outcome_demo(outcome)  # every policy, path and key, before the lock and the first expensive step
    with hold_directory(outcome.out, "memrl demo"):
        run_outcome_demo(outcome)
    return 0
