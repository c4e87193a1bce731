"""`python scripts/cpu_speed_rerun.py ALGO [VARIANT ...]`: the training-step figures of memrl/bench/cpu_speed.py for
one algorithm (grpo | ppo | sft), its variants (default: all three) one after another in one run, nothing else running.

Used twice: the GRPO rows of docs/PERFORMANCE.md (the bench run had its float32 TRL child OOM-killed while a paused
demo held 6.4 GB: `python scripts/cpu_speed_rerun.py grpo`), and the PPO rows after the first-minibatch reuse
(`python scripts/cpu_speed_rerun.py ppo float32 bfloat16+shared`), and the SFT compact LM head
(`python scripts/cpu_speed_rerun.py sft bfloat16 bfloat16+shared`). `--steps=N` times N steps (default 3; the first
is a warm-up). Writes runs/cpu_speed_<algo>.json."""
import json
import sys
from pathlib import Path

from memrl.bench.cpu_speed import VARIANTS, _split_dir, _synth_dir, run_job

args = [a for a in sys.argv[1:] if not a.startswith("--steps=")]
steps_arg = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--steps=")), "3")
algo = args[0] if args else "grpo"
names = args[1:] or list(VARIANTS)
bad = [n for n in names if n not in VARIANTS]
if algo not in ("grpo", "ppo", "sft") or bad or not steps_arg.isdigit() or int(steps_arg) < 1:
    print(f"usage: python scripts/cpu_speed_rerun.py grpo|ppo|sft [{' '.join(VARIANTS)}] [--steps=N >= 1]; "
          f"got {sys.argv[1:]}", file=sys.stderr)
    sys.exit(2)
steps = int(steps_arg)
work = Path("runs/bench_speed_work")
data = str(_synth_dir(work) if algo == "sft" else _split_dir(work))  # what the bench trains on
out = {}
for name in names:
    dtype, shared = VARIANTS[name]
    out[name] = run_job({"kind": algo, "dtype": dtype, "shared": shared, "data": data,
                         "steps": steps, "out": f"runs/bench_speed_work/{algo}_{name}", "threads": 2})
    print(name, out[name], flush=True)
Path(f"runs/cpu_speed_{algo}.json").write_text(json.dumps(out, indent=1))
