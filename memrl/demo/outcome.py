"""`memrl demo` (`make demo`): the outcome-reward protocol for the answer agent, end to end on CPU with a real model.

1. Data: LoCoMo conv-26 (in this repository) with its questions (categories 1-4) dealt into train / validation
   slices (`data=<file>.json`, `split_fractions`; what `memrl data split-questions` writes); or `data=<dir>`
   holding `<train_split>.jsonl` and `<eval_split>.jsonl`; or `data=""`: synthetic conversations split by
   conversation. The demo reads no test split: settings are chosen on validation.
2. What the policy sees: the question and the k + k memories BM25 retrieves from an add_only bank of the raw
   turns (per-prompt ids, bank order), prompt "short" (answer in a few words). No gold evidence, key or tag.
3. The start policy: with `warm_start_conversations` (the default) the prepared instruct model (SmolLM2-135M-
   Instruct) SFT'd with LoRA on the gold short answers of memrl's synthetic conversations only (no LoCoMo data):
   the synthetic -> real warm start; the untrained model is then the `prompt_only` baseline. With `init_from`, a
   given model is the start; with neither, the prompt-only model is. Answers are extracted leniently
   (`memrl.protocol.lenient`).
4. RL from that start, LoRA, on the outcome reward only (LoCoMo F1 of the answer against the gold answer):
   GRPO (TRL) and PPO (`memrl.train.ppo`, GRPO's shape: num_generations samples per prompt); and the
   shuffled-reward control of each: the same run with rewards permuted across each batch (`reward_control=shuffle`).
5. Every policy and the baselines (bm25 extractive, bm25_verbatim) answer the same validation questions through
   `memrl eval`; `memrl eval compare` gives each one's difference from the start with a paired bootstrap CI,
   and the output table (the most common answer's share: collapse, mean length, no-answer rate).
6. Writes `<out>/report.md`, `summary.json`, `results.png`, `curves.png`, and per-stage run and eval directories.

The defaults are `configs/demo/default.yaml`, what `make demo` runs in about 15 minutes on 2 cores: the warm start
(50 SFT steps) and GRPO from it with its shuffled control, one seed. `configs/demo/full.yaml` is the full preset
(GRPO and PPO, 3 seeds, learning curves, the best-of-16 ceiling). `configs/demo/oracle_tiny.yaml` runs the earlier
tiny-model demo, whose inputs and rewards are gold.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from memrl.config import ConfigError, as_dict, save_resolved
from memrl.data.io import write_json
from memrl.data.loaders import load_conversations, load_locomo
from memrl.data.question_split import plan_question_split, shared_questions, write_question_split
from memrl.data_synth.config import SynthConfig
from memrl.data_synth.synth import run_synthesis, split_assignment
from memrl.eval.config import EvalConfig
from memrl.eval.engine import run_eval
from memrl.eval.policies import policy_ref
from memrl.eval.report import compare
from memrl.train.config import TrainConfig
from memrl.train.guards import check_recipe
from memrl.train.run import finished_run
from memrl.train.trainer import train

ALGOS = ("grpo", "ppo")


@dataclass
class OutcomeDemoConfig:
    pipeline: str = "outcome"  # "outcome" (this file) | "oracle_tiny" (memrl/demo/oracle_tiny.py)
    out: str = "runs/demo"
    resume: bool = False  # reuse stages whose directory holds a finished run of the same config (the rest retrain)
    #                       and cached evaluations; an interrupted `memrl demo` loses at most the running stage
    model: str = "smollm2-135m-instruct"  # a prepared model name or a model directory
    init_from: str = ""  # the policy RL starts from, when not `model` itself: a model or LoRA adapter directory, e.g.
    #                      the synthetic-data SFT's final_model (configs/train/sft_answer_short_synth_smollm2.yaml);
    #                      it is then the `start` row and `model` is evaluated as `prompt_only`
    warm_start_conversations: int = 100  # > 0: before RL, SFT `model` (LoRA) on the gold short answers of this many
    #   synthetic conversations (`memrl synth` defaults, adversarial questions left out; no LoCoMo data) and start
    #   RL from it: the synthetic -> real warm start (docs/TRAINING.md). One SFT (seed 0) shared by every RL seed.
    warm_start_steps: int = 50  # its SFT steps, 8 examples each
    warm_start_lr: float = 2e-4
    # -- data: "" = synthesize; a directory with <train_split>.jsonl and <eval_split>.jsonl; or a LoCoMo .json file,
    #    whose questions (categories 1-4) the demo deals into <out>/data/<train_split|eval_split>.jsonl by
    #    `split_fractions`, seeded by data_seed (what `memrl data split-questions` writes)
    data: str = "data/locomo/conv-26.json"
    split_fractions: list[float] = field(default_factory=lambda: [0.6, 0.4])  # train, eval shares of a LoCoMo file
    train_split: str = "train"
    eval_split: str = "validation"
    allow_eval_overlap: bool = False  # data=<dir> whose eval split repeats train questions is refused; true runs it
    #   anyway as a fit diagnostic (can RL fit the questions it trains on?), flagged in summary.json and report.md
    benchmark: str = "locomo"  # eval protocol of the data: synthetic | locomo (a LoCoMo file needs locomo)
    data_seed: int = 0
    num_conversations: int = 40
    sessions: list[int] = field(default_factory=lambda: [4, 5])
    turns: list[int] = field(default_factory=lambda: [8, 10])
    questions_per_conversation: int = 12
    eval_questions_per_conversation: int = 0  # cap per evaluated conversation (0 = all)
    # -- the answer agent's view
    k_per_speaker: int = 3
    max_new_tokens: int = 16
    # -- RL
    seeds: list[int] = field(default_factory=lambda: [0])
    algos: list[str] = field(default_factory=lambda: ["grpo"])
    shuffled_control: bool = True
    grpo_steps: int = 8
    ppo_iterations: int = 12
    learning_rate: float = 5e-5  # LoRA lr of both algorithms (chosen on validation, docs/TRAINING.md)
    batch_size: int = 16  # completions per step / iteration
    num_generations: int = 8  # GRPO group size
    lora_r: int = 16
    ppo_kl_coef: float = 0.05
    grpo_beta: float = 0.0  # GRPO's KL coefficient to the start policy (TRL's beta; the LoRA adapter off is the reference)
    temperature: float = 1.0  # sampling temperature of the rollouts (both algorithms); evaluation stays greedy
    baselines: list[str] = field(default_factory=lambda: ["bm25"])
    curve_every: int = 0  # learning curves: checkpoint every N steps and evaluate each on the eval split (0 = off)
    ceiling_samples: int = 0  # best-of-N ceiling: N samples (temperature 1) of the start policy per question, the
    #                           mean over questions of the best F1 (what any RL could gain with this retrieval)
    torch_threads: int = 0  # 0 = torch's default

    def validate(self) -> None:
        if self.pipeline != "outcome":
            raise ConfigError(f"pipeline: {self.pipeline!r} is not 'outcome' here (oracle_tiny has its own schema)")
        if not self.seeds:
            raise ConfigError("seeds: give at least one seed")
        bad = [a for a in self.algos if a not in ALGOS]
        if bad or not self.algos:
            raise ConfigError(f"algos: {self.algos} must be a non-empty subset of {list(ALGOS)}")
        for name in ("grpo_steps", "ppo_iterations", "batch_size", "num_generations", "k_per_speaker",
                     "max_new_tokens", "num_conversations"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size % self.num_generations:
            raise ConfigError(f"batch_size ({self.batch_size}) must be a multiple of num_generations "
                              f"({self.num_generations})")
        if self.grpo_beta < 0 or self.ppo_kl_coef < 0:
            raise ConfigError(f"grpo_beta and ppo_kl_coef must be >= 0, got {self.grpo_beta} and {self.ppo_kl_coef}")
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if self.warm_start_conversations and self.init_from:
            raise ConfigError("init_from and warm_start_conversations both say where RL starts: give one")
        if self.warm_start_conversations < 0 or self.warm_start_steps < 1 or not self.warm_start_lr > 0:
            raise ConfigError("warm_start_conversations must be >= 0, warm_start_steps >= 1, warm_start_lr > 0")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.benchmark not in ("synthetic", "locomo"):
            raise ConfigError(f"benchmark: {self.benchmark!r} is not synthetic or locomo")
        if is_locomo_file(self.data):
            if self.benchmark != "locomo":
                raise ConfigError(f"data={self.data} is a LoCoMo file: evaluate it with benchmark=locomo")
            if len(self.split_fractions) != 2 or min(self.split_fractions) <= 0 or abs(sum(self.split_fractions) - 1) > 1e-6:
                raise ConfigError(f"split_fractions: {self.split_fractions} must be two shares > 0 (train, eval) "
                                  f"summing to 1")
        if self.train_split == self.eval_split:
            raise ConfigError(f"train_split and eval_split are both {self.train_split!r}: the demo would evaluate on "
                              f"the questions it trained on; give two different splits")


def is_locomo_file(data: str) -> bool:
    """`data` names a LoCoMo JSON file (split by the demo) rather than a directory of splits."""
    return str(data).endswith(".json")


def locomo_split(cfg: OutcomeDemoConfig, out: Path, write: bool = True) -> str:
    """Deal a LoCoMo file's questions into <out>/data/<train_split|eval_split>.jsonl (categories 1-4, stratified,
    seeded by data_seed); with `write=False` only check that the file loads and splits. Returns the directory."""
    path = Path(cfg.data)
    if not path.is_file():
        raise ConfigError(f"data: {path} does not exist (a LoCoMo .json file, or a directory of <split>.jsonl)")
    convs = load_locomo(path)
    fractions = dict(zip((cfg.train_split, cfg.eval_split), cfg.split_fractions))
    d = out / "data"
    how = {"seed": cfg.data_seed, "skip_categories": ["5"], "source": str(path)}
    if write:
        write_question_split(convs, d, fractions, **how)
    else:
        plan_question_split(convs, fractions, **how)
    return str(d)


def answer_env(cfg: OutcomeDemoConfig) -> dict[str, Any]:
    return {"answer_mode": "short", "k_per_speaker": cfg.k_per_speaker, "metric": "locomo_f1", "manager": "add_only",
            "include_gold": False, "skip_categories": ["adversarial", "5"], "bank": {"probes": "none"}}


def lora_model(cfg: OutcomeDemoConfig) -> dict[str, Any]:
    """The `model:` section of every recipe the demo runs (RL stages and the warm start)."""
    return {"path": cfg.model, "lora": True, "lora_r": cfg.lora_r, "lora_alpha": 2 * cfg.lora_r,
            "lora_target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}


def recipe(raw: dict[str, Any]) -> TrainConfig:
    """A validated TrainConfig from the demo's raw keys (TrainConfig's defaults for the rest)."""
    tc = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(TrainConfig), raw))
    tc.validate()
    return tc


def train_config(cfg: OutcomeDemoConfig, algo: str, seed: int, out: Path, control: str = "none") -> TrainConfig:
    raw = {
        "algo": algo, "role": "answer", "output_dir": str(out), "seed": seed, "init_from": cfg.init_from,
        "max_steps": cfg.grpo_steps if algo == "grpo" else cfg.ppo_iterations, "learning_rate": cfg.learning_rate,
        "batch_size": cfg.batch_size, "max_completion_length": cfg.max_new_tokens,
        "temperature": cfg.temperature, "logging_steps": 1,
        "save_steps": cfg.curve_every,
        "reward_control": control, "overwrite": True,  # the demo owns <out>/train: unfinished stages retrain
        "report_to": ["none"],
        "model": lora_model(cfg),
        "data": {"path": cfg.data, "train_split": cfg.train_split, "eval_split": cfg.eval_split},
        "answer_env": answer_env(cfg),
        "grpo": {"num_generations": cfg.num_generations, "beta": cfg.grpo_beta},
        # PPO's iterations, batch, sampling and seed are the top-level keys above (max_steps, batch_size, ...)
        "ppo": {"learning_rate": cfg.learning_rate, "critic_learning_rate": cfg.learning_rate, "critic": "shared",
                "ppo_epochs": 1, "kl_coef": cfg.ppo_kl_coef,
                # GRPO's shape: batch_size / num_generations prompts, num_generations samples each, one prompt
                # group per minibatch (its prompt computed once: memrl.policies.prefix)
                "samples_per_prompt": cfg.num_generations, "minibatch_size": cfg.num_generations},
    }
    if algo == "grpo":
        raw["trl"] = {"gradient_checkpointing": False}
    return recipe(raw)


def eval_config(cfg: OutcomeDemoConfig, policy: str, out: Path) -> EvalConfig:
    ec = EvalConfig(
        benchmark=cfg.benchmark, protocol=f"{cfg.benchmark} (demo, {cfg.eval_split})",
        data=str(Path(cfg.data) / f"{cfg.eval_split}.jsonl"), policy=policy, default_manager="add_only",
        answer_mode="short", candidates="memories", top_k_per_speaker=cfg.k_per_speaker,
        max_new_tokens=cfg.max_new_tokens, max_questions=cfg.eval_questions_per_conversation,
        skip_categories=["adversarial", "5"] if cfg.benchmark == "locomo" else ["adversarial"],
        exclude_from_overall=["adversarial"], metrics=["locomo_f1", "em", "retrieval_recall"], out=str(out),
        resume=cfg.resume, torch_threads=cfg.torch_threads, reader_trained=None, progress=False,
    )
    ec.validate()
    return ec


def stage_runs(cfg: OutcomeDemoConfig) -> list[tuple[str, str, str, int, str]]:
    """The training stages, in order: (label, group over seeds, algo, seed, reward control)."""
    runs = []
    for seed in cfg.seeds:
        for algo in cfg.algos:
            runs.append((f"{algo}_s{seed}", algo, algo, seed, "none"))
        if cfg.shuffled_control:  # the same run with rewards permuted across each batch, for each algorithm
            for algo in cfg.algos:
                runs.append((f"{algo}_shuffled_s{seed}", f"{algo}_shuffled", algo, seed, "shuffle"))
    return runs


def warm_start_configs(cfg: OutcomeDemoConfig, out: Path) -> tuple[SynthConfig, TrainConfig]:
    """The synthetic conversations and the SFT recipe of the warm start (what a deployed agent sees: the question
    and the BM25 memories of an add_only bank; target: the synthetic question's gold answer)."""
    synth = SynthConfig(out=str(out / "warm_start" / "data"), num_conversations=cfg.warm_start_conversations,
                        seed=cfg.data_seed)
    raw = {
        "algo": "sft", "role": "answer", "output_dir": str(out / "warm_start" / "sft"), "seed": 0,
        "sft": {"teacher": "gold_answer"}, "max_steps": cfg.warm_start_steps, "learning_rate": cfg.warm_start_lr,
        "batch_size": 8, "logging_steps": 5, "save_steps": 0, "overwrite": True, "report_to": ["none"],
        "model": lora_model(cfg),
        "data": {"path": synth.out, "train_split": "train", "eval_split": "validation"},
        "answer_env": answer_env(cfg), "trl": {"gradient_checkpointing": False},
    }
    return synth, recipe(raw)


def warm_start(cfg: OutcomeDemoConfig, out: Path, say, progress: bool, timings: dict[str, float]) -> str:
    """Synthesize, SFT, and return the SFT's final_model (reused under resume=true when finished)."""
    synth, tc = warm_start_configs(cfg, out)
    if cfg.resume and finished_run(tc) is not None:
        say(f"[demo] warm start: reusing {tc.output_dir}")
    else:
        t = time.time()
        say(f"[demo] warm start: {cfg.warm_start_conversations} synthetic conversations -> {synth.out}, "
            f"SFT {cfg.warm_start_steps} steps")
        run_synthesis(synth, log=lambda *a, **k: None)
        train(tc, progress=progress)
        timings["train/warm_start"] = round(time.time() - t, 1)
    return str(Path(tc.output_dir) / "final_model")


def synth_config(cfg: OutcomeDemoConfig, out: Path) -> SynthConfig:
    synth = SynthConfig(out=str(out / "data"), num_conversations=cfg.num_conversations, seed=cfg.data_seed,
                        sessions_per_conversation=list(cfg.sessions), turns_per_session=list(cfg.turns),
                        questions_per_conversation=cfg.questions_per_conversation)
    try:
        synth.validate()
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return synth


def start_policy(cfg: OutcomeDemoConfig) -> str:
    """What RL starts from: `init_from` (e.g. an SFT warm start) or the model itself."""
    return cfg.init_from or cfg.model


def check_outcome_demo(cfg: OutcomeDemoConfig) -> list[str]:
    """Every name, path and key the pipeline will use, checked in seconds before its first expensive step (a
    misspelt baseline used to fail after every training stage): out, the data splits, the start model and each
    baseline (resolved as `memrl eval` resolves policies), every stage's training recipe and eval config.
    Returns the eval questions a data=<dir> shares with its train split (only with allow_eval_overlap; a LoCoMo
    file or synthesized data is split by the demo itself, disjoint by construction)."""
    cfg.validate()
    shared: list[str] = []
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out={out} is an existing file; the demo writes a directory")
    if is_locomo_file(cfg.data):
        data = locomo_split(cfg, out, write=False)
    elif cfg.data:
        data = cfg.data
        splits = {}
        for split in (cfg.train_split, cfg.eval_split):
            f = Path(cfg.data) / f"{split}.jsonl"
            if not f.is_file():
                raise ConfigError(f"data: {f} does not exist ({'train_split' if split == cfg.train_split else 'eval_split'}"
                                  f"={split}; the demo reads <data>/<split>.jsonl)")
            splits[split] = load_conversations(f)
            if not splits[split]:
                raise ConfigError(f"data: {f} holds no conversation")
        shared = shared_questions(splits[cfg.train_split], splits[cfg.eval_split])
        if shared and not cfg.allow_eval_overlap:
            raise ConfigError(f"data: {len(shared)} question(s) of {cfg.eval_split}.jsonl are also in "
                              f"{cfg.train_split}.jsonl (e.g. {shared[0]}): the demo would report F1 on questions it "
                              "trained on. Give disjoint splits (memrl data split-questions), or allow_eval_overlap=true "
                              "for a fit diagnostic")
    else:
        data = str(out / "data")
        synth = synth_config(cfg, out)
        counts = Counter(split_assignment(synth).values())
        for key, split in (("train_split", cfg.train_split), ("eval_split", cfg.eval_split)):
            if split not in synth.split_fractions:
                raise ConfigError(f"{key}={split}: synthesized data has the splits {sorted(synth.split_fractions)}")
            if not counts.get(split):
                raise ConfigError(f"num_conversations={cfg.num_conversations} leaves the {split!r} split empty "
                                  f"(it takes {synth.split_fractions[split]:.0%} of the conversations); synthesize "
                                  f"more conversations")
    planned = dataclasses.replace(cfg, data=data)
    try:
        probe = eval_config(planned, "bm25", out / "eval" / "start")
        recipes = [train_config(planned, algo, seed, out / "train" / label, control)
                   for label, _, algo, seed, control in stage_runs(cfg)]
    except ConfigError:
        raise
    except ValueError as e:  # the schemas' own validation
        raise ConfigError(str(e)) from None
    policy_ref(cfg.model, "answerer", probe, what="model")
    if cfg.init_from:
        policy_ref(cfg.init_from, "answerer", probe, what="init_from")
    labels = {"start", "prompt_only", *(label for label, *_ in stage_runs(cfg))}
    for name in cfg.baselines:
        policy_ref(name, "answerer", probe, what="baselines")
        if name in labels:
            raise ConfigError(f"baselines: {name!r} is listed twice or is the name of a demo stage; each evaluated "
                              f"policy needs its own name")
        labels.add(name)
    if cfg.warm_start_conversations:
        try:
            recipes.append(warm_start_configs(planned, out)[1])
        except ValueError as e:
            raise ConfigError(str(e)) from None
    for tc in recipes:
        check_recipe(tc)
    return shared


def _synthesize(cfg: OutcomeDemoConfig, out: Path, say) -> str:
    synth = synth_config(cfg, out)
    data_dir = Path(synth.out)
    say(f"[demo] synthesizing {cfg.num_conversations} conversations -> {data_dir}")
    run_synthesis(synth, log=lambda *a, **k: None)
    return str(data_dir)


def run_outcome_demo(cfg: OutcomeDemoConfig, progress: bool = True) -> dict[str, Any]:
    import torch  # deferred: torch is only needed once models run

    seen_in_training = check_outcome_demo(cfg)
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    t0 = time.time()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    say = print if progress else (lambda *a, **k: None)
    if not cfg.data:
        cfg.data = _synthesize(cfg, out, say)
    elif is_locomo_file(cfg.data):
        say(f"[demo] splitting {cfg.data}'s questions -> {out / 'data'}")
        cfg.data = locomo_split(cfg, out)
    save_resolved(cfg, out)
    timings: dict[str, float] = {}
    evals: dict[str, tuple[Path, dict[str, Any]]] = {}  # label -> (eval directory, its results)

    def evaluate(label: str, policy: str) -> None:
        d = out / "eval" / label
        t = time.time()
        say(f"[demo] eval {label} ({policy}) on {cfg.eval_split}")
        results = run_eval(eval_config(cfg, policy, d))
        timings[f"eval/{label}"] = round(time.time() - t, 1)
        evals[label] = (d, results)

    curves: dict[str, list[int]] = {}  # stage label -> checkpoint steps evaluated
    if cfg.warm_start_conversations:  # RL starts from the SFT model (a copy of cfg: the caller's is untouched)
        cfg = dataclasses.replace(cfg, init_from=warm_start(cfg, out, say, progress, timings))
    evaluate("start", start_policy(cfg))  # the policy RL starts from (without init_from: the prompt-only model)
    if cfg.init_from:
        evaluate("prompt_only", cfg.model)
    runs = stage_runs(cfg)  # (label, group over seeds, algo, seed, control)
    for label, _, algo, seed, control in runs:
        tc = train_config(cfg, algo, seed, out / "train" / label, control)
        t = time.time()
        if cfg.resume and finished_run(tc) is not None:
            say(f"[demo] {label}: reusing {tc.output_dir}")
        else:
            say(f"[demo] train {label} ({algo}, reward_control={control})")
            train(tc, progress=progress)
            timings[f"train/{label}"] = round(time.time() - t, 1)
        evaluate(label, str(Path(tc.output_dir) / "final_model"))
        for step, ck in checkpoints(Path(tc.output_dir), algo):
            if step >= tc.max_steps:  # the last checkpoint is the final model, evaluated above
                continue
            evaluate(f"{label}@{step}", ck)
            curves.setdefault(label, []).append(step)
    for name in cfg.baselines:
        evaluate(name, name)
    ceiling = best_of_n(cfg, out, say) if cfg.ceiling_samples else None

    order = ["start"] + (["prompt_only"] if cfg.init_from else []) + [r[0] for r in runs] + list(cfg.baselines)
    md, data = compare([str(evals[k][0]) for k in order], metric="locomo_f1", samples=1000)
    groups = {label: group for label, group, *_ in runs}
    summary = _summarize(cfg, order, groups, data, {k: v[1] for k, v in evals.items()}, timings, time.time() - t0)
    summary["ceiling"] = ceiling
    summary["eval_questions_seen_in_training"] = len(seen_in_training)
    summary["curves"] = _curves(cfg, out, runs, curves, {k: v[1] for k, v in evals.items()})
    write_json(out / "summary.json", summary)
    _plot_curves(summary["curves"], out)
    (out / "report.md").write_text(_report(cfg, summary, md))
    _plot(summary, out)
    say(f"[demo] done in {summary['wall_seconds']:.0f} s: {out / 'report.md'}")
    say(_headline(summary))
    return summary


def checkpoints(run_dir: Path, algo: str) -> list[tuple[int, str]]:
    """(step, policy directory) of a run's intermediate checkpoints, in step order (the final model excluded)."""
    out = []
    for d in run_dir.glob("checkpoint-*"):
        try:
            step = int(d.name.split("-", 1)[1])
        except ValueError:
            continue
        policy = d / "policy" if algo == "ppo" else d
        if (policy / "adapter_config.json").is_file() or (policy / "config.json").is_file():
            out.append((step, str(policy)))
    return sorted(out)


def best_of_n(cfg: OutcomeDemoConfig, out: Path, say) -> dict[str, Any]:
    """The start policy sampled `ceiling_samples` times per question at temperature 1: the mean sampled F1 and the
    mean over questions of the best sample's F1 (an upper bound on what reranking its own samples could give)."""
    d = out / "eval" / f"start_best_of_{cfg.ceiling_samples}"
    ec = dataclasses.replace(eval_config(cfg, start_policy(cfg), d), temperature=1.0,
                             seeds=list(range(cfg.ceiling_samples)), bootstrap_samples=0)
    say(f"[demo] best-of-{cfg.ceiling_samples} ceiling of the start policy")
    run_eval(ec)
    best: dict[str, float] = {}
    sampled: list[float] = []
    for line in (d / "predictions.jsonl").read_text().splitlines():
        r = json.loads(line)
        f1 = float(r["scores"]["locomo_f1"])
        sampled.append(f1)
        best[r["uid"]] = max(best.get(r["uid"], 0.0), f1)
    return {"samples": cfg.ceiling_samples, "questions": len(best),
            "best_of_n_f1": statistics.fmean(best.values()) if best else None,
            "mean_sampled_f1": statistics.fmean(sampled) if sampled else None}


def _curves(cfg, out: Path, runs, curves, results) -> dict[str, Any]:
    """Per stage: training reward per logged step (metrics.jsonl) and eval F1 at start, each checkpoint and the end."""
    start = results["start"]["metrics"]["locomo_f1"]["overall"]
    res: dict[str, Any] = {}
    for label, _, algo, _, _ in runs:
        rewards = []
        f = out / "train" / label / "metrics.jsonl"
        if f.exists():
            for line in f.read_text().splitlines():
                r = json.loads(line)
                if isinstance(r.get("reward"), (int, float)):
                    rewards.append((r["step"], r["reward"]))
        steps = cfg.grpo_steps if algo == "grpo" else cfg.ppo_iterations
        f1 = [(0, start)] + [(k, results[f"{label}@{k}"]["metrics"]["locomo_f1"]["overall"]) for k in curves.get(label, [])]
        if label in results:
            f1.append((steps, results[label]["metrics"]["locomo_f1"]["overall"]))
        res[label] = {"train_reward": rewards, "eval_f1": f1}
    return res


def _plot_curves(curves: dict[str, Any], out: Path, smooth: int = 4):
    """curves.png: training reward (sampled, temperature 1; moving mean over `smooth` steps) and eval-split F1
    (greedy) per step. One colour per group (algorithm, control): thin lines per seed, a thick line for the mean
    over seeds when there are several. Returns the (closed) figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not curves:
        return None
    groups: dict[str, list[str]] = {}
    for label in curves:
        groups.setdefault(label.rsplit("_s", 1)[0], []).append(label)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    for gi, (group, labels) in enumerate(groups.items()):
        color, style = f"C{gi % 10}", "--" if "shuffled" in group else "-"
        many = len(labels) > 1
        for key, ax in (("train_reward", a), ("eval_f1", b)):
            series = []
            for label in labels:
                pts = curves[label][key]
                if not pts:
                    continue
                xs, ys = zip(*pts)
                if key == "train_reward" and smooth > 1:
                    ys = [statistics.fmean(ys[max(0, i - smooth + 1): i + 1]) for i in range(len(ys))]
                series.append(dict(zip(xs, ys)))
                mark = "" if key == "train_reward" else "o"
                ax.plot(xs, ys, style + mark, color=color, lw=0.8 if many else 1.2, ms=2 if many else 3,
                        alpha=0.35 if many else 1.0, label=None if many else group)
            if many and series:
                common = sorted(set.intersection(*(set(x) for x in series)))
                ax.plot(common, [statistics.fmean(x[k] for x in series) for k in common], style, color=color, lw=2.2,
                        label=f"{group} (mean of {len(series)} seeds)")
    a.set_xlabel("step")
    a.set_ylabel(f"training reward (sampled, mean of {smooth} steps)" if smooth > 1 else "training reward (sampled)")
    b.set_xlabel("step")
    b.set_ylabel("eval F1 (greedy)")
    b.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    plt.close(fig)
    return fig


def _summarize(cfg, order, groups, data, results, timings, wall) -> dict[str, Any]:
    f1 = data["metrics"]["locomo_f1"]["overall"]
    rows = []
    for i, label in enumerate(order):
        diff = f1["diffs"][i - 1] if i else None
        rows.append({"label": label, "locomo_f1": f1["values"][i],
                     "em": results[label]["metrics"].get("em", {}).get("overall"),
                     "diff_vs_start": None if diff is None else diff["diff"],
                     "ci95_vs_start": None if diff is None else diff["ci95"],
                     "outputs": data.get("outputs", {}).get(label)})
    by_algo: dict[str, list[float]] = {}
    for r in rows:
        if r["label"] in groups and r["diff_vs_start"] is not None:
            by_algo.setdefault(groups[r["label"]], []).append(r["diff_vs_start"])
    return {"config": as_dict(cfg), "policies": rows, "wall_seconds": round(wall, 1), "timings": timings,
            "seeds": list(cfg.seeds),
            "diff_vs_start_by_algo": {a: {"mean": statistics.fmean(v), "sd": statistics.stdev(v) if len(v) > 1 else None,
                                          "n_seeds": len(v)} for a, v in by_algo.items()}}


def _headline(s: dict[str, Any]) -> str:
    lines = [f"{'policy':24s} {'F1':>7s} {'vs start (95% CI)':>28s}  top-answer share"]
    if s.get("eval_questions_seen_in_training"):  # printed and reported first: these numbers are not held out
        lines.insert(0, f"Fit diagnostic, not a held-out result: {s['eval_questions_seen_in_training']} of the "
                        "evaluated questions were trained on (allow_eval_overlap)")
    for r in s["policies"]:
        ci = r["ci95_vs_start"]
        d = "" if r["diff_vs_start"] is None else f"{r['diff_vs_start']:+.3f}" + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "")
        top = (r["outputs"] or {}).get("top_share")
        lines.append(f"{r['label']:24s} {r['locomo_f1']:7.3f} {d:>28s}  {top if top is None else round(top, 2)}")
    for algo, st in s["diff_vs_start_by_algo"].items():
        sd = "" if st["sd"] is None else f" ± {st['sd']:.3f}"
        lines.append(f"{algo} - start over {st['n_seeds']} seed(s): {st['mean']:+.3f}{sd}")
    c = s.get("ceiling")
    if c and c.get("best_of_n_f1") is not None:
        lines.append(f"start policy, best of {c['samples']} samples (temperature 1): F1 {c['best_of_n_f1']:.3f} "
                     f"(mean sampled F1 {c['mean_sampled_f1']:.3f}): the ceiling reranking its own samples reaches")
    return "\n".join(lines)


def _report(cfg: OutcomeDemoConfig, s: dict[str, Any], compare_md: str) -> str:
    budgets = []  # only the algorithms that ran (each has its shuffled control)
    if "grpo" in cfg.algos:
        budgets.append(f"GRPO {cfg.grpo_steps} steps")
    if "ppo" in cfg.algos:
        budgets.append(f"PPO {cfg.ppo_iterations} iterations")
    labels = " and ".join(f"`{a}_shuffled`" for a in cfg.algos)
    anchors = "".join(([f", GRPO beta {cfg.grpo_beta}"] if "grpo" in cfg.algos else [])
                      + ([f", PPO KL coefficient {cfg.ppo_kl_coef}"] if "ppo" in cfg.algos else []))
    start_note = (f" (`{cfg.init_from}`; `prompt_only` is `{cfg.model}` before any training)" if cfg.init_from
                  else ", which is also the prompt-only baseline")
    control = (f" {labels}: the same algorithm with rewards shuffled across each batch (the same compute, no link "
               "between answer and reward)." if cfg.shuffled_control else "")
    head = [
        "# memrl demo: outcome-reward RL for the answer agent", "",
        (f"Model `{cfg.model}` with LoRA r={cfg.lora_r}; data `{cfg.data}` (trained on `{cfg.train_split}`, "
        f"evaluated on `{cfg.eval_split}`); seeds {list(cfg.seeds)}; {', '.join(budgets)}, {cfg.batch_size} "
        f"completions each, lr {cfg.learning_rate}, sampling temperature {cfg.temperature}{anchors}. Wall time {s['wall_seconds']:.0f} s."), "",
        ("The policy sees the question and the memories BM25 retrieves from an add_only bank of raw turns; the "
        "reward is the LoCoMo F1 of its answer (no gold evidence, key or op in the prompt or the reward). `start` "
        f"is the model before RL{start_note}.{control} A difference whose CI "
        "includes 0 is not a result."), "",
        "```", _headline(s), "```", "",
    ]
    return "\n".join(head) + compare_md + "\n"


def _plot(s: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = s["policies"]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(rows)), 3.6))
    xs = range(len(rows))
    ax.bar(xs, [r["locomo_f1"] or 0 for r in rows], color=["#777"] + ["#3a7"] * (len(rows) - 1))
    for i, r in enumerate(rows):
        if r["ci95_vs_start"]:
            lo, hi = r["ci95_vs_start"]
            base = rows[0]["locomo_f1"] or 0
            ax.plot([i, i], [base + lo, base + hi], color="k", lw=1)
    ax.set_xticks(list(xs), [r["label"] for r in rows], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("LoCoMo F1 (validation)")
    ax.set_title("answer agent: start vs RL vs controls (bars: start + 95% CI of the paired difference)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "results.png", dpi=110)
    plt.close(fig)
