"""`memrl bench`: every performance figure of the project in one run, each against its reference.

    memrl bench [--quick] [--out runs/bench] [--only bank,synth,...] [--threads 1]

Writes `<out>/bench.json` ({"machine": {...}, "figures": [{name, value, unit, reference, ratio, target, met,
note, load_1min}]}) and `<out>/bench.md` (the same as a markdown table), and prints the table.

Rules the figures follow, and why:
- A reference is measured side by side, in the same process and run, with the same inputs: plain TRL GRPO
  for memrl's GRPO step, one Ray worker for two, one-by-one generation for batched. Machines differ and a
  shared 2-core box drifts by 2x within minutes, so only a same-run ratio means anything. The one exception is
  Memory-R1's published memory-search latency, which is quoted, not measured: its figure has no ratio.
- `met` is true/false only when the measurement is the one the target talks about (the size, the worker
  count); in `--quick` mode sizes shrink and such targets read null ("n/a"), and each note says what size ran.
- The 1-minute load average is recorded per figure group: other jobs on the machine slow everything, and
  a reader needs to know.

Groups (`--only`): bank, synth, ray, env, eval, generation, vllm, grpo, ppo. The env group's "share of a
GRPO step" figure comes from the grpo group (the reward time measured inside memrl's GRPO steps).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import importlib.util
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from memrl import __version__
from memrl.bench.bank import bench_bank
from memrl.bench.cpu_speed import speed_figures
from memrl.bench.env import bench_env
from memrl.bench.eval import bench_eval
from memrl.bench.figures import Context, Figure, Sizes
from memrl.bench.generation import bench_generation, bench_vllm
from memrl.bench.real_model import bench_real_model
from memrl.bench.rl import bench_grpo, bench_ppo
from memrl.bench.synth import bench_ray, bench_synth
from memrl.config import ConfigError, load_config
from memrl.data.io import atomic_write, write_json
from memrl.files import check_output_path

GROUPS = ("bank", "synth", "ray", "env", "eval", "generation", "vllm", "grpo", "ppo")


BENCHES: dict[str, Callable[[Context], list[Figure]]] = {
    "bank": bench_bank, "synth": bench_synth, "ray": bench_ray, "env": bench_env, "eval": bench_eval,
    "generation": bench_generation, "vllm": bench_vllm, "grpo": bench_grpo, "ppo": bench_ppo,
    "real_model": bench_real_model, "cpu_speed": speed_figures,
}
# Only with --only / only=[...]: they load SmolLM2-135M (memrl/bench/real_model.py); cpu_speed is the float32 -> bf16
# -> shared-prefix part of real_model on its own (memrl/bench/cpu_speed.py).
OPTIONAL_GROUPS = ("real_model", "cpu_speed")


# ---- machine info and output --------------------------------------------------------------------------------------
def _version(mod: str) -> str | None:
    try:
        return importlib.import_module(mod).__version__
    except Exception:  # noqa: BLE001 - a missing or broken optional package is reported as None
        return None


def machine_info(threads: int | None) -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        import psutil

        mem_gb = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    import torch


    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gb": mem_gb, "platform": platform.platform(),
        "python": platform.python_version(), "torch": torch.__version__, "transformers": _version("transformers"),
        "trl": _version("trl"), "accelerate": _version("accelerate"), "ray": _version("ray"), "bm25s": _version("bm25s"),
        "memrl": __version__, "cuda": torch.cuda.is_available(), "torch_threads": torch.get_num_threads(),
        "torch_threads_setting": threads if threads else "torch default",
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
    }


def _fmt(x: Any) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "**no**"
    if isinstance(x, float):
        return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"
    return str(x)


def to_markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"# memrl bench{' --quick' if result.get('quick') else ''}",
        "",
        (f"{m['date']} - {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, Python {m['python']}, torch {m['torch']}, "
        f"transformers {m['transformers']}, trl {m['trl']}; torch threads {m['torch_threads']}; load average "
        f"(1/5/15 min) {m['load_avg_start']} at start, {m.get('load_avg_end')} at end; {result.get('wall_seconds')} s."),
        "",
        "| figure | value | unit | reference (same run) | ratio | target | met | load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in result["figures"]:
        lines.append(f"| {f['name']} | {_fmt(f['value'])} | {f['unit']} | {f['reference'] or ''} | {_fmt(f['ratio'])} "
                     f"| {f['target'] or ''} | {_fmt(f['met']) if f['target'] else ''} | {_fmt(f.get('load_1min'))} |")
    lines += ["", "Notes (what was measured, at which size):", ""]
    lines += [f"- **{f['name']}**: {f['note']}" for f in result["figures"] if f.get("note")]
    if result.get("errors"):
        lines += ["", "Errors:", ""] + [f"- {g}: {e}" for g, e in result["errors"].items()]
    return "\n".join(lines) + "\n"


def run_bench(quick: bool = False, out: str | os.PathLike = "runs/bench", only: list[str] | None = None,
              threads: int | None = 1, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the selected figure groups; write bench.json and bench.md into `out`; return the result dict."""
    for k, v in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("HF_DATASETS_OFFLINE", "1"),
                 ("TRL_EXPERIMENTAL_SILENCE", "1"), ("TOKENIZERS_PARALLELISM", "false"), ("RAY_AUTH_MODE", "disabled")):
        os.environ.setdefault(k, v)
    groups = list(only or GROUPS)
    unknown = [g for g in groups if g not in BENCHES]
    if unknown:
        raise ValueError(f"--only: unknown group(s) {unknown}; choose from {', '.join(GROUPS)}")
    # before measuring: a file in the way, another program's directory or an unwritable place fails now
    check_output_path(out, "--out", owned=lambda d: (d / "bench.json").is_file(), owner="a bench output directory")
    import torch

    threads_before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    t_start = time.perf_counter()
    result: dict[str, Any] = {"machine": machine_info(threads), "quick": quick, "figures": [], "errors": {}}
    try:
        with tempfile.TemporaryDirectory(prefix="memrl-bench-") as work:
            ctx = Context(Sizes.quick() if quick else Sizes(), quick, threads, Path(work))
            for g in (*GROUPS, *OPTIONAL_GROUPS):  # fixed order: env before grpo (the share figure reads env), grpo before ppo
                if g not in groups:
                    continue
                load = round(os.getloadavg()[0], 2)
                t0 = time.perf_counter()
                log(f"[bench] {g} ... (load {load})")
                try:
                    figs = BENCHES[g](ctx)
                except Exception as e:  # noqa: BLE001 - one broken group must not hide the others' figures
                    result["errors"][g] = f"{type(e).__name__}: {e}"
                    log(f"[bench] {g} FAILED: {type(e).__name__}: {e}\n{traceback.format_exc(limit=6)}")
                    continue
                for f in figs:
                    f.load_1min = load
                result["figures"].extend(asdict(f) for f in figs)
                log(f"[bench] {g} done in {time.perf_counter() - t0:.1f} s")
    finally:
        torch.set_num_threads(threads_before)
    result["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    result["wall_seconds"] = round(time.perf_counter() - t_start, 1)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    write_json(out / "bench.json", result)
    with atomic_write(out / "bench.md") as f:
        f.write(to_markdown(result))
    return result


# ---- command line -------------------------------------------------------------------------------------------------
@dataclass
class BenchConfig:
    """`memrl bench [--config FILE] [key=value ...]`; the flags below override the file and the overrides."""

    quick: bool = False  # small sizes: the whole run in ~2 minutes on 2 cores
    out: str = "runs/bench"  # output directory for bench.json and bench.md
    only: list[str] = field(default_factory=list)  # groups to run (empty: all)
    threads: int = 1  # torch intra-op threads while measuring (0 = torch's default)

    def validate(self) -> None:
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0 (0 = torch's default), got {self.threads}")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("bench", help="performance figures, each as a ratio to a reference measured in the same run",
                              description=__doc__.split("\n\n")[0])
    _add_arguments(p)
    p.set_defaults(func=main)
    return p


def _threads(value: str) -> int:
    """argparse type: a thread count >= 0 (argparse turns the error into a one-line usage message)."""
    n = int(value)
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (0 = torch's default), got {n}")
    return n


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="YAML file with BenchConfig keys (configs/bench/default.yaml)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. quick=true only=[bank,synth]")
    p.add_argument("--quick", action="store_true", default=None,
                   help="small sizes: the whole run in ~2 minutes on 2 cores")
    p.add_argument("--out", default=None, help="output directory for bench.json and bench.md (default runs/bench)")
    p.add_argument("--only", default=None, help=f"comma-separated groups to run (default all): {','.join(GROUPS)}; "
                   f"opt-in: {','.join(OPTIONAL_GROUPS)}")
    p.add_argument("--threads", type=_threads, default=None,
                   help="torch intra-op threads while measuring (default 1: fastest for the tiny model on a small, "
                        "shared CPU; 0 = torch's default)")


def bench_config(args: argparse.Namespace) -> BenchConfig:
    """defaults <- --config FILE <- key=value overrides <- the flags given."""
    cfg = load_config(BenchConfig, args.config, list(args.overrides or []))
    if args.quick:
        cfg.quick = True
    if args.out is not None:
        cfg.out = args.out
    if args.only is not None:
        cfg.only = [g.strip() for g in args.only.split(",") if g.strip()]
    if args.threads is not None:
        cfg.threads = args.threads
    return cfg


def main(args: argparse.Namespace | list[str] | None = None) -> int:
    if not isinstance(args, argparse.Namespace):
        p = argparse.ArgumentParser(prog="memrl bench")
        _add_arguments(p)
        args = p.parse_args(args)
    cfg = bench_config(args)
    only = list(cfg.only) or None
    if only and any(g not in BENCHES for g in only):
        raise ConfigError(f"--only: unknown group(s) {[g for g in only if g not in BENCHES]}; "
                          f"choose from {', '.join(GROUPS)}")
    result = run_bench(quick=cfg.quick, out=cfg.out, only=only, threads=cfg.threads or None,
                       log=lambda s: print(s, file=sys.stderr, flush=True))
    print(to_markdown(result))
    print(f"wrote {Path(cfg.out) / 'bench.json'} and {Path(cfg.out) / 'bench.md'}")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
