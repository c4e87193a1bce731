"""The shuffled-reward control alone, with the full preset's exact recipe (memrl.demo.outcome.train_config) at
another learning rate, each run then evaluated on the preset's validation slice (greedy, as the demo does):

    python scripts/control_lr.py runs/control_lr5e-5 5e-5 0 1 2
    memrl eval compare runs/demo_full/eval/start runs/control_lr5e-5/eval/grpo_shuffled_s0 ...

Data: runs/data/conv26_split (configs/demo/full.yaml says how to make it)."""
import sys
from pathlib import Path

from memrl.config import load_config
from memrl.demo.outcome import OutcomeDemoConfig, eval_config, train_config
from memrl.eval.engine import run_eval
from memrl.train.run import finished_run
from memrl.train.trainer import train

out, lr, seeds = Path(sys.argv[1]), float(sys.argv[2]), [int(s) for s in sys.argv[3:]]
cfg = load_config(OutcomeDemoConfig, "configs/demo/full.yaml", [f"out={out}", "data=runs/data/conv26_split",
                                                                  f"learning_rate={lr}", "curve_every=0"])
for seed in seeds:
    tc = train_config(cfg, "grpo", seed, out / "train" / f"grpo_shuffled_s{seed}", "shuffle")
    if finished_run(tc) is None:
        train(tc, progress=False)
    run_eval(eval_config(cfg, str(Path(tc.output_dir) / "final_model"), out / "eval" / f"grpo_shuffled_s{seed}"))
    print("done", seed, flush=True)
