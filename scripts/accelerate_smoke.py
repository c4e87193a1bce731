"""GRPO (TRL) and PPO (memrl's) in several processes under `accelerate launch`, writing real checkpoints.

    accelerate launch --config_file configs/accelerate/cpu_2proc.yaml scripts/accelerate_smoke.py --algo grpo --out runs/acc/grpo
    accelerate launch --config_file configs/accelerate/cpu_2proc.yaml scripts/accelerate_smoke.py --algo ppo --out runs/acc/ppo

Both train the memory manager on snapshot rows of two synthetic conversations with memrl's ManagerSnapshotReward
(GRPO adds a tiny shaping term, `char_diversity`), starting from the offline tiny model, for a few steps; tests/test_accelerate.py runs them with two CPU processes
(gloo). Each process writes `<out>/rank-<r>.json` (a fingerprint of its final weights and the rows it rolled
out); the main process writes `<out>/report.json`, `<out>/final_model/` (safetensors) and the checkpoint.

GRPO needs nothing from memrl: TRL's GRPOTrainer runs on accelerate, each process generating and scoring its share
of the batch and DDP averaging gradients.

PPO (memrl/train/ppo.py) is single-process code. `distribute_ppo` makes it data-parallel without touching it:
- every process takes a disjoint slice of the global batch: process r of W collects the rows that a single
  process would take at iteration `i * W + r` with a batch of `global / W` (`ShardedRollouts`), so the W slices
  of iteration i are exactly the rows of a single-process iteration with the global batch;
- weights start identical (broadcast from process 0) and every parameter's gradient is averaged across
  processes by a post-accumulate-grad hook (what DDP does, one tensor at a time: fine for small models),
  before PPOTrainer clips and steps, so the weights stay identical on every process;
- the sampling seed differs per process (`ShardedRollouts` reseeds), so the slices are independent samples.
One difference from a single process with the global batch remains: advantages are whitened per process.
PPOTrainer's generate() builds its input tensors on the CPU, so this runs on CPU only (see the report).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch
import torch.distributed as dist


def fingerprint(module: torch.nn.Module) -> str:
    """sha256 over every parameter's name and bytes: equal on two processes iff their weights are equal."""
    h = hashlib.sha256()
    for name, p in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def snapshot_rows(seed: int):
    from memrl.data_synth.config import SynthConfig
    from memrl.data_synth.synth import synthesize_conversation
    from memrl.train.snapshots import snapshot_dataset

    cfg = SynthConfig(seed=seed, sessions_per_conversation=[3, 3], turns_per_session=[8, 8]).validate()
    return snapshot_dataset([synthesize_conversation(cfg, i) for i in range(2)])


class RecordingReward:
    """memrl's manager reward, remembering which snapshot rows it scored (to show each process got its own)."""

    def __init__(self):
        from memrl.train.snapshots import ManagerSnapshotReward

        self.inner = ManagerSnapshotReward()
        self.__name__ = "manager_reward"
        self.seen: list[str] = []

    def __call__(self, prompts=None, completions=None, **columns):
        self.seen.extend(columns.get("snapshot_id") or [])
        return self.inner(prompts=prompts, completions=completions, **columns)


def char_diversity(prompts=None, completions=None, **columns) -> list[float]:
    """Share of distinct characters in a completion: a tiny shaping term so that an untrained model, whose every
    manager completion fails to parse (reward -1 for all), still gets non-zero GRPO advantages in two steps."""
    texts = [c[0]["content"] if isinstance(c, list) else str(c) for c in completions]
    return [len(set(t)) / max(1, len(t)) for t in texts]


# ---- PPO, data-parallel -----------------------------------------------------------------------------------
class ShardedRollouts:
    """Process `rank` of `world` rolls out its slice of the global batch (see the module docstring)."""

    def __init__(self, inner, rank: int, world: int):
        self.inner, self.rank, self.world = inner, rank, world

    def collect(self, policy, tokenizer, cfg, iteration: int):
        torch.manual_seed(cfg.seed * 7919 + iteration * self.world + self.rank)  # independent samples per process
        return self.inner.collect(policy, tokenizer, cfg, iteration * self.world + self.rank)


def distribute_ppo(trainer) -> None:
    """Make a PPOTrainer data-parallel: same initial weights everywhere, gradients averaged before each step."""
    world = dist.get_world_size()
    modules = [trainer.policy, trainer.critic]
    seen: set[int] = set()
    for m in modules:
        for p in m.parameters():
            if id(p) in seen:  # tied weights: one tensor, one hook
                continue
            seen.add(id(p))
            dist.broadcast(p.data, src=0)
            if p.requires_grad:
                def average(param: torch.Tensor) -> None:
                    dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
                    param.grad.div_(world)

                p.register_post_accumulate_grad_hook(average)


def run_ppo(args, state, model, tok, rows, out: Path) -> dict:
    from memrl.train.algorithms.ppo import PPOConfig
    from memrl.train.ppo import PPOTrainer, RowRollouts

    world, rank = state.num_processes, state.process_index
    if args.batch % world:
        raise SystemExit(f"--batch ({args.batch}) must be a multiple of the number of processes ({world})")
    reward = RecordingReward()
    cfg = PPOConfig(total_iterations=args.steps, batch_size=args.batch // world, minibatch_size=args.batch // world,
                    ppo_epochs=1, max_new_tokens=args.max_new_tokens, learning_rate=1e-3, critic_learning_rate=1e-3,
                    seed=args.seed, critic="separate")
    rewards: list[float] = []

    def log(m: dict) -> None:  # called on every process at the same iterations: the all-reduce is collective
        r = torch.tensor([float(m["reward"])])
        dist.all_reduce(r)
        rewards.append(r.item() / world)

    trainer = PPOTrainer(model, tok, ShardedRollouts(RowRollouts(rows, reward), rank, world), cfg, out,
                         metrics_logger=log)
    distribute_ppo(trainer)
    initial = fingerprint(trainer.policy)
    trainer.train(progress=False)
    if state.is_main_process:
        ckpt = trainer.save_checkpoint()
        trainer.policy.save_pretrained(out / "final_model", safe_serialization=True)
        tok.save_pretrained(out / "final_model")
    else:
        ckpt = out / f"checkpoint-{trainer.iteration}"
    state.wait_for_everyone()
    return {"initial_sha256": initial, "params_sha256": fingerprint(trainer.policy),
            "critic_sha256": fingerprint(trainer.critic), "seen": reward.seen, "rewards": rewards,
            "iterations": trainer.iteration, "checkpoint": str(ckpt)}


# ---- GRPO (TRL, as is) --------------------------------------------------------------------------------------
def run_grpo(args, state, model, tok, rows, out: Path) -> dict:
    from trl import GRPOConfig, GRPOTrainer

    world = state.num_processes
    if args.batch % (world * args.num_generations):
        raise SystemExit(f"--batch ({args.batch}) must be a multiple of processes x --num-generations")
    reward = RecordingReward()
    initial = fingerprint(model)
    cuda = torch.cuda.is_available()
    cfg = GRPOConfig(output_dir=str(out), max_steps=args.steps, per_device_train_batch_size=args.batch // world,
                     num_generations=args.num_generations, max_completion_length=args.max_new_tokens,
                     learning_rate=1e-3, beta=0.0, logging_steps=1, report_to=[], save_strategy="steps",
                     save_steps=args.steps, use_cpu=not cuda, bf16=cuda, seed=args.seed, data_seed=args.seed,
                     disable_tqdm=True, dataloader_num_workers=0)
    trainer = GRPOTrainer(model=model, reward_funcs=[reward, char_diversity], args=cfg, train_dataset=rows,
                          processing_class=tok)
    trainer.train()
    trained = trainer.accelerator.unwrap_model(trainer.model)
    if state.is_main_process:  # save_pretrained, not trainer.save_model: that also pickles training_args.bin
        trained.save_pretrained(out / "final_model", safe_serialization=True)
        tok.save_pretrained(out / "final_model")
    state.wait_for_everyone()
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    return {"initial_sha256": initial, "params_sha256": fingerprint(trained), "seen": reward.seen,
            "rewards": rewards, "iterations": trainer.state.global_step,
            "checkpoint": str(out / f"checkpoint-{trainer.state.global_step}")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algo", choices=["grpo", "ppo"], required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--batch", type=int, default=4, help="completions per step over all processes")
    p.add_argument("--num-generations", type=int, default=2, help="GRPO group size")
    p.add_argument("--max-new-tokens", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from accelerate import PartialState
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from memrl.train.tiny_model import build_tiny_model_dir

    torch.set_num_threads(1)
    state = PartialState(cpu=not torch.cuda.is_available())
    out = Path(args.out)
    base = out / "base_model"
    with state.main_process_first():  # one process builds the model and the rows; the others then read them
        if state.is_main_process and not (base / "config.json").exists():
            build_tiny_model_dir(base, seed=args.seed)
        rows = snapshot_rows(args.seed)
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, use_safetensors=True)
    result = (run_grpo if args.algo == "grpo" else run_ppo)(args, state, model, tok, rows, out)
    result.update(rank=state.process_index, world_size=state.num_processes,
                  distributed_type=str(state.distributed_type),
                  backend=dist.get_backend() if dist.is_initialized() else None)
    (out / f"rank-{state.process_index}.json").write_text(json.dumps(result, indent=1))
    state.wait_for_everyone()
    if state.is_main_process:
        ranks = [json.loads((out / f"rank-{r}.json").read_text()) for r in range(state.num_processes)]
        report = {"algo": args.algo, "world_size": state.num_processes, "steps": args.steps, "batch": args.batch,
                  "weights_identical_across_processes": len({r["params_sha256"] for r in ranks}) == 1,
                  "weights_changed": ranks[0]["params_sha256"] != ranks[0]["initial_sha256"],
                  "final_model": str(out / "final_model"), "checkpoint": ranks[0]["checkpoint"],
                  "ranks": ranks}
        (out / "report.json").write_text(json.dumps(report, indent=1))
        print(json.dumps({k: v for k, v in report.items() if k != "ranks"}))
    state.destroy_process_group() if hasattr(state, "destroy_process_group") else None
    return 0


if __name__ == "__main__":
    sys.exit(main())
