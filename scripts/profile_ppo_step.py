"""`python scripts/profile_ppo_step.py [OVERRIDE ...]`: where a PPO step of the bench's shape goes (bf16 + shared
prefix, SmolLM2 with LoRA r 16, 2 prompts x 8, 16 tokens forced): 4 steps, each with its seconds in generation,
the policy's log-prob/value passes and the reference pass (timers wrapped around them). docs/PERFORMANCE.md."""
import collections
import sys
import time
from pathlib import Path

import torch

from memrl.bench.cpu_speed import REPO, _split_dir
from memrl.config import ConfigError, load_config
from memrl.train import ppo as ppo_module
from memrl.train.builder import build_trainer
from memrl.train.config import TrainConfig

torch.set_num_threads(2)
seconds: dict[str, float] = collections.defaultdict(float)


def timed(name, f):
    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            seconds[name] += time.perf_counter() - t
    return wrapper


ppo_module.generate = timed("generate", ppo_module.generate)
ppo_module.FULL_SOFTMAX["min_new_tokens"] = 16  # the bench's forced length
data = str(_split_dir(Path("runs/bench_speed_work")))
overrides = ["output_dir=runs/ppo_profile", "max_steps=4", "save_steps=0", "overwrite=true", "model.dtype=bfloat16",
             f"data.path={data}", "report_to=[none]", "algo=ppo", "ppo.shared_prefix=true", "max_completion_length=16",
             "batch_size=16", "ppo.critic=shared", "ppo.ppo_epochs=1", "ppo.minibatch_size=8",
             "ppo.samples_per_prompt=8", "ppo.learning_rate=2e-4", "ppo.critic_learning_rate=2e-4"] + sys.argv[1:]
try:
    cfg = load_config(TrainConfig, str(REPO / "configs/train/grpo_answer_short_smollm2.yaml"), overrides)
except ConfigError as e:  # a typo in an override: the key named, nothing run
    print(f"profile_ppo_step: {e}", file=sys.stderr)
    sys.exit(2)
trainer, _, _ = build_trainer(cfg, Path("runs/ppo_profile"))
trainer.ref_logprobs = timed("reference pass", trainer.ref_logprobs)
trainer._logprobs_values = timed("policy log-prob/value passes", trainer._logprobs_values)
for _ in range(4):
    seconds.clear()
    m = trainer.step()
    print({"step": round(m["step_seconds"], 2), "rollout": round(m["rollout_seconds"], 2),
           **{k: round(v, 2) for k, v in seconds.items()}}, flush=True)
