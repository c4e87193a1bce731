"""`memrl demo --config configs/demo/oracle_tiny.yaml`: the tiny-model demo of both policies, gold inputs.

ORACLE: the manager's prompt holds gold facts and similarity tags computed from gold world keys, and its reward
is mostly agreement with gold ops (ManagerEnvConfig.oracle); results here show the machinery, not learning
from outcomes (the outcome protocol; `memrl demo` without a config runs the outcome-reward protocol in `outcome.py`).

1. Synthesize a dataset offline (memrl.data_synth), split by conversation.
2. Build a tiny Llama and a byte-level BPE tokenizer trained on the prompts it will see.
3. Warm-start both policies with SFT (TRL) on *deliberately imperfect* teachers:
   - manager: the noisy teacher (gold operations with a share turned into typical mistakes: UPDATE written
     as ADD, DELETE skipped, wrong target id);
   - answer agent: the extractive BM25 heuristic (it picks the memory that shares most words with the question,
     ties to the older one).
4. From each SFT start, train with GRPO (TRL) and with PPO (memrl.train.ppo):
   - manager: snapshot rows, reward = op agreement + downstream QA by a frozen answer agent + validity +
     write-side temporal + size terms (memrl.envs.manager_env);
   - answer agent (the select answer mode, memrl.protocol.modes.select): the policy picks one memory id from banks that keep
     every version of a fact (add-only manager); a frozen extractive reader answers from it; reward = F1.
5. Evaluate on the held-out test conversations against the baselines:
   - managers: the bank each builds over the test conversations is read by the same frozen answer agent
     (BM25 extractive), so QA F1 differences are the manager's; plus op accuracy against gold ops;
   - answer agents: pick from add-only banks of the test conversations, read by the same frozen reader.
6. Write runs/demo/summary.json, report.md and PNGs (learning curves, a results chart).

`memrl demo seeds=3` repeats training for three seeds and reports means and spreads.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memrl.config import load_config, save_resolved
from memrl.data.io import write_json
from memrl.data_synth.config import SynthConfig
from memrl.data_synth.synth import run_synthesis
from memrl.envs.answer.candidates import CandidateBuilder, build_requests
from memrl.envs.answer.config import AnswerEnvConfig
from memrl.envs.manager.config import ManagerEnvConfig
from memrl.eval.engine import BankStats
from memrl.eval.metrics import op_metrics
from memrl.policies.baselines import bank_builder, make_baseline
from memrl.policies.llm import LLMAnswerer, LLMManager
from memrl.protocol import modes
from memrl.protocol.parsing import AnswerParse
from memrl.rewards.accuracy import exact_match, locomo_f1
from memrl.train.algorithms.grpo import GRPOSettings
from memrl.train.algorithms.ppo import PPOSettings
from memrl.train.algorithms.sft import SFTSettings
from memrl.train.config import DataConfig, ModelConfig, TrainConfig
from memrl.train.data import answer_sft_rows, corpus_from_rows, load_split, make_teacher, manager_sft_rows
from memrl.train.run import finished_run
from memrl.train.trainer import train

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@dataclass
class StageSteps:
    sft: int = 200
    grpo: int = 60
    ppo: int = 40


@dataclass
class DemoConfig:
    pipeline: str = "oracle_tiny"  # picks this file's pipeline (memrl/demo/__init__.py)
    out: str = "runs/demo_oracle_tiny"
    seeds: int = 1  # number of training seeds (first_seed, first_seed + 1, ...); data stay fixed
    first_seed: int = 0
    # resume=true: stages whose run directory already holds a finished run of the same config (summary.json,
    # final_model, identical config.yaml) are reused, not retrained; the others train again. An interrupted
    # `memrl demo seeds=3` (38 minutes here) then loses at most the stage that was running.
    resume: bool = False
    data_seed: int = 0
    # -- data (a small synthetic world; the question mix stresses what a memory manager controls)
    num_conversations: int = 100  # 80 train / 10 validation / 10 test
    sessions: list[int] = field(default_factory=lambda: [5, 7])
    turns: list[int] = field(default_factory=lambda: [10, 12])
    questions_per_conversation: int = 20
    question_mix: dict[str, float] = field(default_factory=lambda: {
        "single_hop": 0.3, "knowledge_update": 0.35, "conflict_resolution": 0.35})
    # -- model
    hidden_size: int = 128
    num_layers: int = 2
    vocab_size: int = 2000
    # -- teachers
    teacher_error_rate: float = 0.75  # share of UPDATE/DELETE ops the manager's teacher gets wrong ...
    teacher_wrong_id_share: float = 0.0  # ... as stale duplicates (UPDATE written as ADD) and skipped DELETEs
    answer_teacher: str = "bm25"
    # -- the answer agent: a picker with a frozen extractive reader (the select mode) over banks that keep every
    #    version of a fact (built by the add-only manager), so choosing the current memory is its decision.
    answer_mode: str = modes.SELECT.name
    answer_bank: str = "add_only"
    answer_order: str = "bank"  # candidates in write order: the newest version of a fact is listed last
    # -- training
    # SFT long enough that the policy is *calibrated* to its teacher: after 400 steps the manager samples a
    # correct UPDATE for 24-28% of update steps, about as often as the teacher wrote one (after 150 steps: 3%, too rare
    # for RL to find), while its greedy decision is still the teacher's majority mistake (ADD).
    manager_steps: StageSteps = field(default_factory=lambda: StageSteps(sft=400, grpo=120, ppo=120))
    # The picker's SFT start is weak (it imitates BM25's word overlap only partly); RL then learns to pick the
    # memory the reader answers from correctly (docs/TRAINING.md).
    answer_steps: StageSteps = field(default_factory=lambda: StageSteps(sft=300, grpo=60, ppo=30))
    sft_lr: float = 1e-3  # 3e-3 left seed 1's manager on a loss plateau (~0.08: ADD everything) after 400 steps
    rl_lr: float = 5e-4  # 1e-3 broke the output format within ~20 GRPO steps (mu=4) or 100 PPO iterations
    ppo_lr: float = 0.0  # PPO actor and critic lr (0: rl_lr)
    # PPO's per-token KL penalty to the SFT start, per role (docs/TRAINING.md). Manager: at 0.02 it wrote unparsable
    # greedy output on NOOP steps in 2 of 3 seeds, at 0.1 UPDATEs on NOOP steps in 1 of 3; 0.2 held in all three.
    # Answer agent: 0.2 halved its gain over SFT (0.242 -> 0.15 QA F1 in seeds 0 and 1); 0.02 it is.
    manager_ppo_kl_coef: float = 0.2
    answer_ppo_kl_coef: float = 0.02
    grpo_iterations: int = 1  # TRL's num_iterations (GRPO's mu): passes over each generated batch
    grpo_steps_per_generation: int = 4  # TRL's steps_per_generation: one generation round feeds this many
    #   optimizer steps with fresh prompts (16 prompts x 8 samples per round). Session 2's setting, mu=4 over
    #   4-prompt rounds, saw only 120 distinct prompts in 120 steps and left seed 0's manager unchanged
    #   (0.308 -> 0.308 QA F1); 4 steps per generation with mu=1 (480 prompts) took it to 0.559.
    batch_size: int = 16  # SFT batch
    rl_batch_size: int = 32  # completions per RL step (GRPO: 4 prompts x 8 generations)
    num_generations: int = 8
    change_focus: float = 0.6  # manager RL rows: share of steps that UPDATE/DELETE a memory
    max_rl_rows: int = 2000
    related_k: int = 3  # memories shown per fact to the manager (short prompts for a tiny model)
    answer_k: int = 3  # memories per speaker shown to the answer agent
    threads: int = 0  # torch threads (0: torch's default)

    def validate(self) -> None:
        if self.seeds < 1:
            raise ValueError("seeds must be >= 1")
        if self.grpo_iterations < 1:
            raise ValueError("grpo_iterations must be >= 1")
        if min(self.ppo_lr, self.manager_ppo_kl_coef, self.answer_ppo_kl_coef) < 0:
            raise ValueError("ppo_lr, manager_ppo_kl_coef and answer_ppo_kl_coef must be >= 0")
        if self.grpo_steps_per_generation < 1:
            raise ValueError("grpo_steps_per_generation must be >= 1")
        if self.num_conversations < 10:
            raise ValueError("num_conversations must be >= 10 (train/validation/test split by conversation)")
        if abs(sum(self.question_mix.values()) - 1.0) > 1e-6:
            raise ValueError("question_mix must sum to 1")


# ---------------------------------------------------------------------------------------------------------
def _llm(spec_dir: str, role: str, answer_mode: str):
    from memrl.policies.backends import SamplingParams, TransformersBackend  # deferred: imports torch

    backend = TransformersBackend(spec_dir, device="cpu", batch_size=32)
    sampling = SamplingParams(n=1, temperature=0.0, max_tokens=24 if role == "manager" else _answer_tokens(answer_mode))
    if role == "manager":
        return LLMManager(backend, prompt="compact_sim", sampling=sampling)
    return LLMAnswerer(backend, answer_mode=answer_mode, sampling=sampling)


def _answer_tokens(answer_mode: str) -> int:
    return 6 if modes.get(answer_mode).reader else 20  # "[12]" vs ids + **Answer:** + a short answer


def evaluate_manager(manager, convs, env_cfg, reader_cfg) -> dict[str, float]:
    """Op-level metrics over the episodes, then QA over the banks the manager built, read by BM25.

    Op accuracy follows `memrl eval`'s rule (memrl.eval.engine.BankStats): an unparsable completion changed
    nothing, so each gold op of its step meets a NOOP. (The environment's op reward term is simply absent on a
    format failure, and a mean over it would score a manager that fails to parse every hard step as perfect.)
    """
    import dataclasses


    name = str(getattr(manager, "name", type(manager).__name__))
    stats: dict[str, BankStats] = {}

    def count(ep, step, outcome) -> None:
        stats.setdefault(ep.conv.conversation_id, BankStats(name))(ep, step, outcome)

    # One pass: the manager writes each bank with the prompts it was trained on (env_cfg; probes only add a
    # reward term), the hook scores its ops, and the reader's questions are asked of that same bank.
    reader = dataclasses.replace(reader_cfg, bank=dataclasses.replace(env_cfg, probes="none"))
    builder = CandidateBuilder(convs, reader, manager, on_bank_step=count)
    pairs = [builder.request(ci, qi) for ci, qi in builder.eligible()]
    ops = op_metrics([h.stats for h in stats.values()], samples=0) or {}
    answers = make_baseline("bm25").answer([r for r, _ in pairs])
    return {**_qa_scores(answers, pairs),
            "op_accuracy": ops.get("op_accuracy") if ops.get("has_gold_ops") else None,
            "format_failure_rate": ops.get("format_failure_rate"), "memory_size": ops.get("memory_size")}


def evaluate_answerer(answerer, pairs) -> dict[str, float]:
    """QA over the (request, row) pairs of the answer environment (`memrl.envs.answer_env.build_requests`)."""
    answers = answerer.answer([r for r, _ in pairs])
    return {**_qa_scores(answers, pairs), "op_accuracy": None}


def best_pick(pairs) -> list:
    """The oracle of a mode with a frozen reader (select): for each question, the reader's answer from the candidate that scores best
    against the gold (what a perfect picker reaches with this reader and these candidates)."""

    out = []
    for _, row in pairs:
        answers = row.get("candidate_answers") or [""]
        best = max(answers, key=lambda a: locomo_f1(a, row["answer"], row.get("category_id")))
        out.append(AnswerParse(answer=best, ok=True))
    return out


def _qa_scores(answers, pairs) -> dict[str, float]:
    """Official LoCoMo F1 and exact match of answers against the gold of their (request, row) pairs."""

    f1 = [locomo_f1(a.answer or "", row["answer"], row.get("category_id")) for a, (_, row) in zip(answers, pairs)]
    em = [exact_match(a.answer or "", row["answer"]) for a, (_, row) in zip(answers, pairs)]
    return {"qa_f1": _mean(f1), "qa_em": _mean(em), "questions": len(pairs)}


def _mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else 0.0


# ---------------------------------------------------------------------------------------------------------
def run_demo(cfg: DemoConfig, progress: bool = True) -> dict[str, Any]:
    import torch

    from memrl.train.tiny_model import build_tiny_model_dir  # deferred: imports torch, transformers

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    t0 = time.time()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    save_resolved(cfg, out)
    say = print if progress else (lambda *a, **k: None)

    # 1. data
    data_dir = out / "data"
    synth = SynthConfig(out=str(data_dir), num_conversations=cfg.num_conversations, seed=cfg.data_seed,
                        sessions_per_conversation=list(cfg.sessions), turns_per_session=list(cfg.turns),
                        questions_per_conversation=cfg.questions_per_conversation,
                        question_mix={**{k: 0.0 for k in SynthConfig().question_mix}, **cfg.question_mix})
    synth.validate()
    say(f"[demo] 1/5 synthesizing {cfg.num_conversations} conversations -> {data_dir}")
    run_synthesis(synth, log=lambda *a, **k: None)
    train_convs = load_split(str(data_dir), "train")
    test_convs = load_split(str(data_dir), "test")

    # Tiny-model settings: few memories per prompt, most relevant first (the decision becomes local),
    # oracle recall of the memory with the fact's world key (ManagerEnvConfig.include_key_matches).
    # ORACLE inputs and rewards (ManagerEnvConfig.oracle): gold facts, gold-key recall, gold-op reward terms.
    env_cfg = ManagerEnvConfig.oracle(related_k=cfg.related_k, max_related=2 * cfg.related_k, max_probes=4,
                                      memory_order="relevance", prompt="compact_sim")
    # How a manager's bank is read when the manager is scored: top-k per speaker, BM25 extractive answers.
    reader_cfg = AnswerEnvConfig(answer_mode="compact", k_per_speaker=cfg.answer_k, metric="locomo_f1", order="relevance",
                                 bank=ManagerEnvConfig(probes="none", related_k=cfg.related_k,
                                                       max_related=2 * cfg.related_k, memory_order="relevance"))
    # The answer agent's environment (training and evaluation): banks built by `answer_bank`.
    answer_cfg = AnswerEnvConfig(answer_mode=cfg.answer_mode, k_per_speaker=cfg.answer_k, metric="locomo_f1",
                                 order=cfg.answer_order, manager=cfg.answer_bank, bank=reader_cfg.bank)
    answer_pairs = build_requests(test_convs, answer_cfg, bank_builder(answer_cfg.manager))  # every answer agent is scored on these, built once

    # 2. teacher traces (for the tokenizer corpus too)
    teacher_m = make_teacher("manager", "noisy_teacher", cfg.teacher_error_rate, cfg.data_seed,
                               cfg.teacher_wrong_id_share)
    m_rows = manager_sft_rows(train_convs, env_cfg, teacher_m)
    a_rows = answer_sft_rows(train_convs, answer_cfg, make_baseline(cfg.answer_teacher))
    corpus = corpus_from_rows(m_rows[:3000], a_rows[:3000])

    results: list[dict[str, Any]] = []
    reused: list[str] = []  # run directories of stages reused by resume=true
    seeds = list(range(cfg.first_seed, cfg.first_seed + cfg.seeds))
    for seed in seeds:
        sdir = out / f"seed{seed}"
        say(f"[demo] 2/5 seed {seed}: building the tiny model")
        base = sdir / "base_model"
        if not (base / "config.json").exists():
            build_tiny_model_dir(base, corpus, vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size,
                                 layers=cfg.num_layers, seed=seed)
        common = dict(seed=seed, data=DataConfig(path=str(data_dir)), model=ModelConfig(path=str(base)),
                      manager_env=env_cfg, answer_env=answer_cfg, grpo=GRPOSettings(num_generations=cfg.num_generations),
                      max_train_rows=cfg.max_rl_rows, change_focus=cfg.change_focus,
                      state_builder="auto")  # ORACLE: RL rows start from banks replayed from gold ops

        def stage(role, algo, steps, init_from="", lr=None, **kw):
            if lr is None:
                lr = (cfg.ppo_lr or cfg.rl_lr) if algo == "ppo" else cfg.rl_lr
            if steps <= 0:
                return None
            batch = cfg.batch_size if algo == "sft" else cfg.rl_batch_size
            if algo == "ppo":  # tiny models: the critic learns at the actor's rate (Memory-R1's 1e-5 is for 3B+)
                kl = cfg.manager_ppo_kl_coef if role == "manager" else cfg.answer_ppo_kl_coef
                kw["ppo"] = PPOSettings(learning_rate=lr, critic_learning_rate=lr, minibatch_size=16, kl_coef=kl)
            # overwrite=True: the demo owns its run directories; a stage that is not reused retrains from scratch.
            tc = TrainConfig(algo=algo, role=role, max_steps=steps, learning_rate=lr, init_from=init_from,
                             output_dir=str(sdir / f"{role}_{algo}"), batch_size=batch, overwrite=True,
                             **common, **kw)
            tc.validate()
            if cfg.resume and (done := finished_run(tc)) is not None:
                say(f"[demo] seed {seed}: {algo.upper()} {role}: reusing the finished run in {tc.output_dir}")
                reused.append(tc.output_dir)
                return done
            say(f"[demo] seed {seed}: {algo.upper()} {role} ({steps} steps)")
            return train(tc, progress=progress)

        say(f"[demo] 3/5 seed {seed}: SFT warm starts on imperfect teachers")
        m_sft = stage("manager", "sft", cfg.manager_steps.sft, lr=cfg.sft_lr,
                      sft=SFTSettings(teacher="noisy_teacher", teacher_error_rate=cfg.teacher_error_rate,
                                      teacher_wrong_id_share=cfg.teacher_wrong_id_share))
        a_sft = stage("answer", "sft", cfg.answer_steps.sft, lr=cfg.sft_lr, sft=SFTSettings(teacher=cfg.answer_teacher))
        m_start = m_sft["final_model"] if m_sft else str(base)
        a_start = a_sft["final_model"] if a_sft else str(base)
        say(f"[demo] 4/5 seed {seed}: GRPO and PPO from the SFT starts")
        grpo_trl = {"num_iterations": cfg.grpo_iterations, "steps_per_generation": cfg.grpo_steps_per_generation}
        runs = {
            ("manager", "sft"): m_sft, ("answer", "sft"): a_sft,
            ("manager", "grpo"): stage("manager", "grpo", cfg.manager_steps.grpo, init_from=m_start,
                                       max_completion_length=24, trl=grpo_trl),
            ("manager", "ppo"): stage("manager", "ppo", cfg.manager_steps.ppo, init_from=m_start,
                                      max_completion_length=24),
            ("answer", "grpo"): stage("answer", "grpo", cfg.answer_steps.grpo, init_from=a_start,
                                      max_completion_length=_answer_tokens(cfg.answer_mode), trl=grpo_trl),
            ("answer", "ppo"): stage("answer", "ppo", cfg.answer_steps.ppo, init_from=a_start,
                                     max_completion_length=_answer_tokens(cfg.answer_mode)),
        }
        say(f"[demo] 5/5 seed {seed}: evaluating on {len(test_convs)} held-out conversations")
        for (role, algo), summary in runs.items():
            if summary is None:
                continue
            pol = _llm(summary["final_model"], role, cfg.answer_mode)
            m = (evaluate_manager(pol, test_convs, env_cfg, reader_cfg) if role == "manager"
                 else evaluate_answerer(pol, answer_pairs))
            results.append({"name": f"{role}-{algo}", "role": role, "stage": algo, "seed": seed, **m,
                            "train_wall_seconds": summary["wall_seconds"],
                            "reward_first": summary.get("reward_first"), "reward_last": summary.get("reward_last")})
            say(f"   {role:7s} {algo:4s}  qa_f1={m['qa_f1']:.3f}  qa_em={m['qa_em']:.3f}"
                + (f"  op_acc={m['op_accuracy']:.3f}  format_fail={m['format_failure_rate']:.3f}"
                   if m.get("op_accuracy") is not None else ""))

    # baselines (deterministic: evaluated once)
    for name in ("add_only", "noisy_teacher", "rule_based_text", "gold_ops"):
        pol = (make_baseline(name, error_rate=cfg.teacher_error_rate, seed=cfg.data_seed,
                             wrong_id_share=cfg.teacher_wrong_id_share)
               if name == "noisy_teacher" else make_baseline(name))
        m = evaluate_manager(pol, test_convs, env_cfg, reader_cfg)
        results.append({"name": name, "role": "manager", "stage": "baseline", "seed": None, **m})
    for name in ("bm25", "oracle_evidence", "gold_answer"):
        m = evaluate_answerer(make_baseline(name), answer_pairs)
        results.append({"name": name, "role": "answer", "stage": "baseline", "seed": None, **m})
    if modes.get(cfg.answer_mode).reader:  # the ceiling of picking: the candidate whose reader answer scores best
        m = {**_qa_scores(best_pick(answer_pairs), answer_pairs), "op_accuracy": None}
        results.append({"name": "best_pick", "role": "answer", "stage": "baseline", "seed": None, **m})

    summary = _summarize(results, seeds, time.time() - t0, cfg)
    summary["reused_stages"] = reused  # their training time is in per_seed's train_wall_seconds, not in wall_seconds
    write_json(out / "summary.json", summary)
    (out / "report.md").write_text(_report(summary, cfg))
    _plot(summary, out, seeds)
    say((out / "report.md").read_text())
    return summary


def _summarize(results, seeds, wall, cfg) -> dict[str, Any]:
    policies = []
    keys = []
    for r in results:
        k = (r["name"], r["role"], r["stage"])
        if k not in keys:
            keys.append(k)
    for name, role, stage in keys:
        rs = [r for r in results if (r["name"], r["role"], r["stage"]) == (name, role, stage)]
        entry: dict[str, Any] = {"name": name, "role": role, "stage": stage}
        for m in ("qa_f1", "qa_em", "op_accuracy", "format_failure_rate", "memory_size"):
            vals = [r[m] for r in rs if r.get(m) is not None]
            entry[m] = statistics.mean(vals) if vals else None
            if len(vals) > 1:
                entry[m + "_std"] = statistics.stdev(vals)
        entry["n_seeds"] = len(rs)
        entry["questions"] = rs[0].get("questions")
        for m in ("reward_first", "reward_last", "train_wall_seconds"):
            vals = [r[m] for r in rs if r.get(m) is not None]
            if vals:
                entry[m] = statistics.mean(vals)
        policies.append(entry)
    by = {(p["role"], p["stage"]): p for p in policies}
    deltas = {}
    for role in ("manager", "answer"):
        sft = by.get((role, "sft"))
        for algo in ("grpo", "ppo"):
            rl = by.get((role, algo))
            if sft and rl:
                deltas[f"{role}_{algo}_minus_sft_qa_f1"] = rl["qa_f1"] - sft["qa_f1"]
                if rl.get("op_accuracy") is not None and sft.get("op_accuracy") is not None:
                    deltas[f"{role}_{algo}_minus_sft_op_accuracy"] = rl["op_accuracy"] - sft["op_accuracy"]
    return {"wall_seconds": round(wall, 1), "seeds": seeds, "policies": policies, "deltas": deltas,
            "per_seed": results,
            "protocol": {"test_conversations": "synthetic test split", "frozen_answer_agent": "bm25 extractive",
                         "qa_metric": "locomo_f1 (official stemmed F1)", "manager_eval_bank": "built by the manager",
                         "answer_eval_bank": f"built by {cfg.answer_bank}", "answer_mode": cfg.answer_mode}}


def _fmt(x, std=None) -> str:
    if x is None:
        return "–"
    return f"{x:.3f}" + (f" ± {std:.3f}" if std is not None else "")


def _report(s: dict[str, Any], cfg: DemoConfig) -> str:
    lines = ["# memrl demo", "",
             f"{len(s['seeds'])} seed(s), wall time {s['wall_seconds']:.0f} s. Test split: held-out synthetic "
             "conversations. Managers are scored by the QA F1 a frozen BM25 answer agent reaches on the bank they "
             "built (LoCoMo official F1), and by op accuracy against gold operations; answer agents answer from "
             f"banks built by the {cfg.answer_bank} manager ({cfg.answer_mode} mode"
             + (": the policy picks one memory, a frozen extractive reader answers from it"
                if modes.get(cfg.answer_mode).reader else "") + ").", "",
             "Op accuracy counts an unparsable completion as NOOPs (it changed nothing); format failures are "
             "the share of manager steps whose output did not parse.", "",
             "| policy | role | stage | QA F1 | QA EM | op accuracy | format failures | memory size |",
             "|---|---|---|---|---|---|---|---|"]
    for p in s["policies"]:
        lines.append(f"| {p['name']} | {p['role']} | {p['stage']} | {_fmt(p['qa_f1'], p.get('qa_f1_std'))} | "
                     f"{_fmt(p['qa_em'], p.get('qa_em_std'))} | {_fmt(p.get('op_accuracy'), p.get('op_accuracy_std'))}"
                     f" | {_fmt(p.get('format_failure_rate'))} | {_fmt(p.get('memory_size'))} |")
    lines += ["", "## RL minus SFT", ""]
    lines += [f"- {k}: {v:+.3f}" for k, v in s["deltas"].items()]
    lines += ["", "Learning curves: `seed*/<role>_<algo>/curves.png`; results chart: `results.png`.", ""]
    return "\n".join(lines)


def _plot(s: dict[str, Any], out: Path, seeds) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, role in zip(axes, ("manager", "answer")):
        ps = [p for p in s["policies"] if p["role"] == role]
        ax.bar(range(len(ps)), [p["qa_f1"] or 0 for p in ps], yerr=[p.get("qa_f1_std", 0) for p in ps],
               color=["#999" if p["stage"] == "baseline" else "#4a7" for p in ps])
        ax.set_xticks(range(len(ps)))
        ax.set_xticklabels([p["name"] for p in ps], rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{role}: QA F1 on held-out conversations")
    fig.tight_layout()
    fig.savefig(out / "results.png", dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------------
def add_parser(subparsers) -> None:
    p = subparsers.add_parser("demo", help="the end-to-end CPU demo",
                              description="Synthesize data, build a tiny model, SFT + GRPO + PPO both policies, "
                                          "evaluate on held-out conversations. key=value overrides DemoConfig.")
    p.add_argument("--config", default=None, help="YAML file with DemoConfig keys")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. seeds=3 out=runs/demo3")
    p.set_defaults(func=main)


def main(args) -> int:

    cfg = load_config(DemoConfig, args.config, args.overrides)
    run_demo(cfg)
    return 0
