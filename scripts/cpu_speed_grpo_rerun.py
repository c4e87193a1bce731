"""`python scripts/cpu_speed_grpo_rerun.py`: the three GRPO variants of memrl/bench/cpu_speed.py again, one after another, with nothing else running (the
bench run had the float32 TRL child OOM-killed while the paused demo held 6.4 GB)."""
import json
from pathlib import Path

from memrl.bench.cpu_speed import VARIANTS, _split_dir, run_job

data = str(_split_dir(Path("runs/bench_speed_work")))  # conv-26 train/validation, as the bench makes it
out = {}
for name, (dtype, shared) in VARIANTS.items():
    out[name] = run_job({"kind": "grpo", "dtype": dtype, "shared": shared, "data": data,
                         "steps": 3, "out": f"runs/bench_speed_work/grpo_{name}", "threads": 2})
    print(name, out[name], flush=True)
Path("runs/grpo_rerun.json").write_text(json.dumps(out, indent=1))
