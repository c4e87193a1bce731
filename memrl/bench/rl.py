"""RL figures: memrl's GRPO step (environment rewards) against plain TRL GRPO, and memrl PPO."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable

from memrl.bench.figures import Context, Figure, median_ci, met, rounded
from memrl.data_synth.config import SynthConfig
from memrl.data_synth.synth import synthesize_conversation
from memrl.train.algorithms.grpo import GRPOSettings, grpo_args
from memrl.train.algorithms.ppo import PPOConfig
from memrl.train.config import TrainConfig
from memrl.train.snapshots import ManagerSnapshotReward, snapshot_dataset


# ---- GRPO: memrl's environment and rewards vs plain TRL -----------------------------------------------------------
class _TimedReward:
    """Wraps a TRL reward function and accumulates the seconds spent inside it."""

    def __init__(self, fn: Callable, name: str):
        self.fn = fn
        self.__name__ = name
        self.seconds = 0.0

    def __call__(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0


def _length_reward(prompts=None, completions=None, **kwargs) -> list[float]:
    """The trivial reward of the plain-TRL reference: cheap, but not constant, so the loss is not zero."""
    return [min(len(c[0]["content"] if isinstance(c, list) else c), 64) / 64 for c in completions]


def _rl_rows(ctx: Context):
    """Manager snapshot rows of two synthetic conversations (gold ops, QA probes: every reward term runs)."""
    if "rl_rows" not in ctx.shared:

        cfg = SynthConfig(seed=0, sessions_per_conversation=[4, 4], turns_per_session=[10, 10]).validate()
        ctx.shared["rl_rows"] = snapshot_dataset([synthesize_conversation(cfg, i) for i in range(2)])
    return ctx.shared["rl_rows"]


class _Baton:
    """Two trainers in two threads take turns one step at a time, so both see the same machine load.

    A thread holds the turn from one `on_step_begin` to its next one (the step, its logging and the next batch's
    loading), then hands it over. On a shared machine whose load drifts by 2x within minutes, this interleaving
    is what makes the A/B ratio repeatable; sequential runs were not (measured: +-20% between runs here).
    """

    def __init__(self, names: list[str]):
        self.cond = threading.Condition()
        self.names = names
        self.turn = names[0]
        self.finished: set[str] = set()

    def _hand_over(self, name: str) -> None:
        others = [n for n in self.names if n != name and n not in self.finished]
        if others:
            self.turn = others[0]
        self.cond.notify_all()

    def take(self, name: str, started: bool) -> None:
        if name not in self.names:  # a typo here would make both runners wait forever
            raise ValueError(f"_Baton: unknown runner {name!r}; runners are {self.names}")
        with self.cond:
            if started:
                self._hand_over(name)
            self.cond.wait_for(lambda: self.turn == name or self.finished >= set(self.names) - {name})

    def finish(self, name: str) -> None:
        with self.cond:
            self.finished.add(name)
            self._hand_over(name)


def _grpo_trainer(ctx: Context, reward: _TimedReward, tag: str, dataset, baton: _Baton, run_dir: str,
                  model_dir=None, lora=None):
    """A TRL GRPOTrainer whose callback times each step (wall, CPU, reward seconds, mean completion length).
    `model_dir` (default: the tiny model) and `lora` (a peft LoraConfig, or None for full fine-tuning) let the
    real-model bench time the same comparison on SmolLM2 with LoRA."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOTrainer  # deferred: imports trl

    sz = ctx.sizes
    cuda = torch.cuda.is_available()

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.rec: dict[str, list[float]] = {"wall": [], "cpu": [], "reward": [], "length": []}
            self.started = False

        def on_step_begin(self, args, state, control, **kw):
            baton.take(tag, self.started)
            self.started = True
            self.t0, self.c0, self.r0 = time.perf_counter(), time.thread_time(), reward.seconds

        def on_step_end(self, args, state, control, **kw):
            self.rec["wall"].append(time.perf_counter() - self.t0)
            self.rec["cpu"].append(time.thread_time() - self.c0)
            self.rec["reward"].append(reward.seconds - self.r0)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "completions/mean_length" in logs:
                self.rec["length"].append(float(logs["completions/mean_length"]))

    model_dir = model_dir or ctx.tiny_model()
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    # Equal work in both trainers: learning rate 0 (the same weights throughout) and completions forced to the
    # length cap (min_new_tokens), so step times differ only by what memrl adds (reward, environment, dataset
    # columns); a step's cost depends on the weights only through completion lengths, which this fixes.
    tc = TrainConfig(algo="grpo", role="manager", output_dir=str(ctx.work / run_dir), seed=0,
                     max_steps=sz.rl_warmup + sz.rl_steps, batch_size=sz.rl_completions,
                     max_completion_length=sz.rl_completion_tokens, learning_rate=0.0, temperature=1.0,
                     grpo=GRPOSettings(num_generations=sz.rl_generations, beta=0.0, loss_type="dapo"),
                     logging_steps=1, report_to=[], save_steps=0)
    args = grpo_args(tc, ctx.work / run_dir, disable_tqdm=True,
                     # every completion runs to the length cap in both trainers: equal generation work per step
                     generation_kwargs={"min_new_tokens": sz.rl_completion_tokens},
                     # TRL defaults bf16=True; on a CPU without bf16 matmul units that makes a step ~6x slower
                     # (measured here). memrl's trainer also enables bf16 on GPU only.
                     bf16=cuda)
    timer = StepTimer()
    trainer = GRPOTrainer(model=model, reward_funcs=[reward], args=args, train_dataset=dataset,
                          processing_class=tok, callbacks=[timer], peft_config=lora)
    return trainer, timer


def _grpo_round(ctx: Context, rows, rewards: dict[str, _TimedReward], first: str, k: int, model_dir=None,
                lora=None) -> dict[str, dict]:
    """A fresh plain and memrl trainer, run in two threads that alternate step by step (`first` starts)."""
    names = [first, "memrl" if first == "plain" else "plain"]
    baton = _Baton(names)
    data = {"plain": rows.select_columns(["prompt"]), "memrl": rows}  # plain TRL: the same prompts, nothing else
    built = {tag: _grpo_trainer(ctx, rewards[tag], tag, data[tag], baton, f"grpo_{tag}{k}", model_dir, lora)
             for tag in names}
    errors: dict[str, BaseException] = {}

    def run(tag: str) -> None:
        try:
            built[tag][0].train()
        except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
            errors[tag] = e
        finally:
            baton.finish(tag)

    threads = [threading.Thread(target=run, args=(tag,), name=f"grpo-{tag}") for tag in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise next(iter(errors.values()))
    w = ctx.sizes.rl_warmup
    return {tag: {key: v[w:] for key, v in built[tag][1].rec.items()} for tag in names}


def grpo_step_ratio(ctx: Context, model_dir=None, lora=None) -> dict:
    """memrl GRPO (env rewards, full snapshot rows) vs plain TRL GRPO, rounds of two fresh trainers alternating
    step by step: per-step wall/CPU/reward seconds of each side and the median per-pair ratio with its CI."""
    sz = ctx.sizes
    rows = _rl_rows(ctx)
    rewards = {"plain": _TimedReward(_length_reward, "length"),
               "memrl": _TimedReward(ManagerSnapshotReward(), "manager_reward")}
    p: dict[str, list[float]] = {"wall": [], "cpu": [], "reward": [], "length": []}
    m: dict[str, list[float]] = {"wall": [], "cpu": [], "reward": [], "length": []}
    round_ratios = []
    for k in range(sz.rl_rounds):
        rec = _grpo_round(ctx, rows, rewards, "plain" if k % 2 == 0 else "memrl", k, model_dir, lora)
        for acc, tag in ((p, "plain"), (m, "memrl")):
            for key, xs in rec[tag].items():
                acc[key].extend(xs)
        round_ratios.append(statistics.median(b / a for a, b in zip(rec["plain"]["wall"], rec["memrl"]["wall"])))
    pairs = [b / a for a, b in zip(p["wall"], m["wall"])]
    return {"plain": p, "memrl": m, "pairs": pairs, "ratio": statistics.median(pairs), "ci": median_ci(pairs),
            "round_ratios": round_ratios}


def bench_grpo(ctx: Context) -> list[Figure]:
    sz = ctx.sizes
    # Fresh trainers each round, and the starting side alternates: a trainer instance can run a few percent
    # faster or slower than its twin for its whole life (measured in A/A runs here), which pairing steps
    # within one round does not cancel; several rounds do.
    r = grpo_step_ratio(ctx)
    p, m, pairs, ratio, round_ratios = r["plain"], r["memrl"], r["pairs"], r["ratio"], r["round_ratios"]
    (lo, hi) = r["ci"]
    p_med, m_med = statistics.median(p["wall"]), statistics.median(m["wall"])
    # The ratio is the median of per-pair ratios: step i of each trainer ran back to back, under the same load.
    cpu_ratio = statistics.median(m["cpu"]) / statistics.median(p["cpu"])
    shares = [r / x for r, x in zip(m["reward"], m["wall"])]
    share = statistics.median(shares) * 100
    same = p["length"] == m["length"]
    ctx.shared["grpo_plain_s"] = p_med
    setup = (f"tiny Llama, {sz.rl_completions} completions per step ({sz.rl_completions // sz.rl_generations} prompts x "
             f"{sz.rl_generations}), <= {sz.rl_completion_tokens} new tokens, manager snapshot prompts of synthetic "
             f"conversations, fp32 (bf16 off on CPU), learning rate 0 and completions forced to the cap so both do "
             f"the same model work (mean completion lengths {'identical' if same else 'differ'}), TRL defaults "
             f"otherwise (loss dapo, beta 0, gradient checkpointing on); {sz.rl_rounds} round(s) of two fresh trainers "
             f"in one process alternating step by step, {sz.rl_steps} steps each after {sz.rl_warmup} warm-up step")
    figs = [
        Figure("grpo.plain_trl_seconds_per_step", rounded(p_med), "s",
               note=f"TRL GRPOTrainer, a trivial length reward, a prompt-only dataset; {setup}"),
        Figure("grpo.memrl_seconds_per_step", rounded(m_med), "s",
               reference=f"plain TRL GRPO on the same model, prompts and batch, same run: {p_med:.3f} s/step",
               ratio=rounded(ratio), target="<= 1.10x plain TRL GRPO", met=met(ratio, "<=", 1.10),
               note=f"ManagerSnapshotReward (format, op agreement, QA probes through the BM25 answer agent, temporal, "
                    f"size) on full snapshot rows (bank JSON columns included); value = median step time; ratio = "
                    f"median of the per-pair ratios of back-to-back steps, bootstrap 95% CI [{lo:.3f}, {hi:.3f}], "
                    f"per round {[round(x, 3) for x in round_ratios]} (ratio of medians {m_med / p_med:.3f}, of median "
                    f"CPU times {cpu_ratio:.3f}); {setup}"),
    ]
    env = ctx.shared.get("env_step")
    extra = ""
    if env:
        extra = (f"; for comparison, {sz.rl_completions} x the env.step median ({env['median_ms']:.2f} ms) is "
                 f"{sz.rl_completions * env['median_ms'] / 1e3 / m_med * 100:.3f}% of the step")
    figs.append(Figure(
        "env.reward_share_of_grpo_step_pct", rounded(share, 4), "%", target="<= 2% of a tiny-model GRPO step",
        met=met(share, "<=", 2.0),
        note=f"seconds inside memrl's reward function / seconds of the GRPO step, measured inside each timed step of "
             f"the memrl trainers (median over steps; max {max(shares) * 100:.3f}%){extra}"))
    return figs


def bench_ppo(ctx: Context) -> list[Figure]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from memrl.train.ppo import PPOTrainer, RowRollouts  # deferred: imports torch

    sz = ctx.sizes
    model_dir = ctx.tiny_model()
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    cfg = PPOConfig(total_iterations=sz.rl_warmup + sz.ppo_steps, batch_size=sz.rl_completions,
                    minibatch_size=sz.rl_completions, max_new_tokens=sz.rl_completion_tokens, learning_rate=1e-3,
                    critic_learning_rate=1e-3, seed=0)
    trainer = PPOTrainer(model, tok, RowRollouts(_rl_rows(ctx), ManagerSnapshotReward()), cfg, ctx.work / "ppo")
    times = []
    for i in range(sz.rl_warmup + sz.ppo_steps):
        t0 = time.perf_counter()
        m = trainer.step()
        if i >= sz.rl_warmup:
            times.append((time.perf_counter() - t0, m["rollout_seconds"]))
    med = statistics.median(t for t, _ in times)
    roll = statistics.median(r for _, r in times)
    ref = ctx.shared.get("grpo_plain_s")
    return [Figure(
        "ppo.seconds_per_step", rounded(med), "s",
        reference=f"plain TRL GRPO step, same run: {ref:.3f} s" if ref else None,
        ratio=rounded(med / ref) if ref else None,
        note=f"memrl PPOTrainer, same tiny model and rows, {sz.rl_completions} completions per iteration, "
             f"<= {sz.rl_completion_tokens} new tokens, {cfg.ppo_epochs} epochs of minibatch {cfg.minibatch_size}, "
             f"separate critic, KL to a frozen reference; rollout + scoring {roll:.3f} s of it; median of "
             f"{len(times)} iterations after {sz.rl_warmup} warm-up")]
