"""Per-run drift of an outcome-demo directory: does a shuffled-reward control move, and how?

    python scripts/control_drift.py runs/demo_full            # markdown table to stdout

For every training stage under <demo>/train/: the sampled training reward, the policy's token entropy, the mean
completion length and the share of completions cut at the length cap, each as the mean of the first and of the
last quarter of the logged steps; and the greedy eval F1 change from the start (from <demo>/eval/). Under
shuffled rewards the expected policy gradient is zero, so a systematic change in entropy or length there (rather
than in F1) is the sign of a drift the loss itself rewards; reading these side by side with the real runs is how
the control is judged.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

KEYS = {  # metric -> (TRL GRPO key, memrl PPO key)
    "reward": ("reward", "reward"),
    "entropy": ("entropy", "entropy"),
    "length": ("completions/mean_length", "completion_length"),
    "clipped": ("completions/clipped_ratio", None),
}


def _quarters(xs: list[float]) -> tuple[float | None, float | None]:
    if not xs:
        return None, None
    q = max(1, len(xs) // 4)
    return statistics.fmean(xs[:q]), statistics.fmean(xs[-q:])


def drift(demo: Path) -> list[dict]:
    start = json.loads((demo / "eval" / "start" / "results.json").read_text())["metrics"]["locomo_f1"]["overall"]
    rows = []
    for run in sorted((demo / "train").iterdir()):
        f = run / "metrics.jsonl"
        if not f.exists():
            continue
        recs = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        recs = [r for r in recs if "reward" in r]
        row: dict = {"run": run.name, "steps": len(recs)}
        for name, keys in KEYS.items():
            vals = [r[k] for r in recs for k in keys if k and isinstance(r.get(k), (int, float))]
            row[name] = _quarters(vals)
        ev = demo / "eval" / run.name / "results.json"
        row["f1_vs_start"] = (json.loads(ev.read_text())["metrics"]["locomo_f1"]["overall"] - start
                              if ev.exists() else None)
        rows.append(row)
    return rows


def _fmt(pair) -> str:
    a, b = pair
    return "" if a is None else f"{a:.3f} -> {b:.3f}"


def main(argv: list[str]) -> int:
    demo = Path(argv[1] if len(argv) > 1 else "runs/demo_full")
    rows = drift(demo)
    print("| run | steps | training reward | entropy | completion length | clipped share | eval F1 - start |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        d = "" if r["f1_vs_start"] is None else f"{r['f1_vs_start']:+.3f}"
        print(f"| {r['run']} | {r['steps']} | {_fmt(r['reward'])} | {_fmt(r['entropy'])} | {_fmt(r['length'])} | "
              f"{_fmt(r['clipped'])} | {d} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
