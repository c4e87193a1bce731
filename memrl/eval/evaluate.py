"""The evaluation engine: any answer policy (optionally behind any memory manager) on any loaded benchmark.

    results = evaluate(conversations, "bm25", manager=None, config=EvalConfig(benchmark="locomo"), out_dir="runs/x")

One conversation is one shard (`memrl.dist` executor, local or Ray). Per shard and seed:

1. **Bank.** With memory candidates (the default), a manager writes the bank turn by turn through the
   manager environment (`envs.manager_env.drive`, inside the answer environment's `CandidateBuilder`, which
   keeps the bank as it stood at each question's time and retrieves top-k per speaker, Memory-R1's 30 + 30
   by default). The builder's `on_bank_step` hook has each step scored, which counts op-level agreement with
   gold ops, rejected ids and unparsable completions in the same single pass. Without a manager, the bank is
   built by `default_manager` (`add_only`: every candidate fact stored as said, i.e. the raw turns on
   LoCoMo; no updates, no deletes), and the protocol says so.
2. **Answers.** All requests of the conversation go to the answer policy in one `answer()` call (LLM
   policies batch them); latency per question is that call's wall time over its questions.
3. **Scores.** Every answer metric (memrl.eval.metrics) and the evidence metrics of the selected candidates,
   tokens read (whitespace tokens of the candidates given; the whole dialogue for `full_context`), and the
   question's position in the history. The optional LLM judge runs afterwards in the driver, batched over
   all questions, with its own JSONL cache.

Per-conversation results are written atomically to `<out>/cache/<conversation_id>.json` under a key that
hashes the protocol, both policies' identities (a checkpoint's weight files' sizes and mtimes) and the
conversation's content; a rerun loads every shard whose key matches and runs only the rest, so an
interrupted evaluation resumes and a different policy never reuses another's answers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memrl import __version__
from memrl.config import ConfigError
from memrl.data.io import DataError, read_conversations, write_json, write_jsonl
from memrl.data.schema import Conversation
from memrl.eval.metrics import (
    ALL_METRICS,
    ANSWER_METRICS,
    EVIDENCE_METRICS,
    JUDGE_METRIC,
    aggregate,
    evidence_scores,
    mean_or_none,
    op_metrics,
    score_answer,
)

log = logging.getLogger(__name__)

CACHE_FORMAT = "memrl-eval-cache/1"
RESULTS_FORMAT = "memrl-eval-results/1"
# Memory-R1's 1:1:8 split of LoCoMo by conversation (benchmarks.md 1.8; "*" = every conversation not named
# by another split). Category 5 is excluded from its overall; 152 / 81 / 1,307 questions in categories 1-4.
MEMORY_R1_SPLIT = {"train": ["conv-26"], "validation": ["conv-30"], "test": ["*"]}
DEFAULT_METRICS = ["locomo_f1", "amem_f1", "bleu1", "em", "evidence_recall", "evidence_precision",
                   "retrieval_recall"]
POLICY_ALIASES = {"oracle": "gold_answer"}  # `policy=oracle` answers the gold answer
BACKEND_KINDS = ("transformers", "hf", "vllm")
ANSWER_MODES = ("compact", "memory_r1", "picker", "select", "memory_t1")
CANDIDATE_SOURCES = ("auto", "memories", "turns", "sessions")
GROUPINGS = {"level": "category_id", "category_id": "category_id", "category": "category"}
# Answerers that read the dialogue themselves instead of the candidates they are given (tokens read).
_READS_WHOLE_DIALOGUE = {"full_context"}
_READS_EVIDENCE_TURNS = {"oracle_evidence"}


@dataclass
class EvalConfig:
    """`memrl eval`: one field per knob, grouped by concern. Every field is recorded in results.json."""

    # ---- what is evaluated -------------------------------------------------------------------------------
    benchmark: str = "locomo"  # locomo | longmemeval | timedial | synthetic (names the loader and the defaults)
    protocol: str = ""  # the protocol's name printed with every result ("" = the benchmark's name)
    data: str = ""  # data file: the benchmark's own file, or common-schema JSONL / a datasets directory
    data_format: str = "auto"  # auto (.jsonl or a directory: common schema; else the benchmark's loader) | jsonl | locomo | longmemeval | timedial
    data_options: dict[str, str] = field(default_factory=dict)  # loader options (TIME-Dial: contexts, time_ranges)
    policy: str = ""  # answer policy: baseline name, oracle, abstain, transformers:PATH, a checkpoint or run directory
    manager: str | None = None  # memory manager building the bank turn by turn (None: `default_manager`)
    default_manager: str = "add_only"  # builds the bank when no manager is given: store every turn/fact as said
    split: str = "all"  # "all" or a key of `splits`
    splits: dict[str, list[str]] = field(default_factory=lambda: {k: list(v) for k, v in MEMORY_R1_SPLIT.items()})  # split -> conversation ids ("*" = the rest)
    conversations: list[str] = field(default_factory=list)  # keep only these conversation ids (after the split)
    max_questions: int = 0  # questions per conversation (0 = all; for smoke tests)
    skip_categories: list[str] = field(default_factory=list)  # categories (names or ids) not evaluated at all
    # ---- categories --------------------------------------------------------------------------------------
    category_key: str = "auto"  # by_category keys: category_id | category | auto (ids when every question has an integer id)
    also_by: list[str] = field(default_factory=list)  # extra groupings: "level" (TIME-Dial levels = category_id), "category"
    category_order: list[str] = field(default_factory=list)  # report order of categories (LoCoMo's paper: 4, 1, 2, 3, 5)
    exclude_from_overall: list[str] = field(default_factory=lambda: ["adversarial"])  # left out of `overall` (names, ids, "abstention")
    adversarial_categories: list[str] = field(default_factory=lambda: ["adversarial"])  # left out of `overall_excl_adversarial`
    # ---- answering ---------------------------------------------------------------------------------------
    answer_mode: str = "compact"  # LLM answer prompt: compact | memory_r1 | picker | select | memory_t1
    candidates: str = "auto"  # memories | turns | sessions | auto (memory_t1: sessions, picker: turns, else memories)
    top_k_per_speaker: int = 30  # retrieval budget per speaker (Memory-R1 / Mem0: 30 + 30)
    top_k_sessions: int = 10  # Memory-T1: BM25 top-k sessions after the time filter
    time_filter: bool = True  # Memory-T1: keep sessions inside the question's time range
    shuffle_candidates: bool = False  # shuffle candidate order (seeded per question)
    manager_unit: str = "turn"  # manager step: "turn" or "session"
    manager_prompt: str = "compact"  # LLM manager prompt: compact | memory_r1
    answer_extraction: str = "lenient"  # lenient: score what the model answers (memrl/eval/lenient.py rules; format failures still counted) | strict: only the **Answer:** format
    reader_trained: bool | None = None  # was the answer model RL-trained (True) or a frozen base reader (False)? anchors.md 8.4
    temperature: float = 0.0  # LLM sampling temperature (0 = greedy: one seed is enough)
    max_new_tokens: int = 128  # LLM answer length
    manager_max_new_tokens: int = 256  # LLM manager completion length
    batch_size: int = 16  # transformers backend batch size
    device: str = "auto"  # transformers backend device
    torch_threads: int = 0  # torch intra-op threads for model policies (0 = torch's default)
    seeds: list[int] = field(default_factory=lambda: [0])  # sampling seeds (only the first runs when deterministic)
    # ---- metrics -----------------------------------------------------------------------------------------
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))  # see memrl.eval.metrics.ALL_METRICS
    judge: str | None = None  # LLM judge backend spec (transformers:PATH); None = no judge, no "judge" metric
    judge_prompt: str = "mem0_judge@1"  # judge template@version (Mem0's ACCURACY_PROMPT)
    bootstrap_samples: int = 1000  # percentile bootstrap resamples over questions
    ci_level: float = 0.95  # confidence level of the intervals
    history_bins: int = 5  # quantile bins of the accuracy-vs-history-length table and plot
    # ---- execution and output ----------------------------------------------------------------------------
    executor: str = "local"  # local | ray (one shard per conversation)
    num_workers: int = 1  # parallel shards with executor=ray
    ray_address: str | None = None  # an existing Ray cluster (None: start a local one)
    progress: bool = True  # progress bars: conversations, and questions / manager steps of model policies
    out: str = ""  # output directory ("" = write nothing, no cache)
    resume: bool = True  # reuse per-conversation results cached under out/cache with a matching key

    def validate(self) -> EvalConfig:
        def one_of(name: str, allowed: tuple | list) -> None:
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}: {getattr(self, name)!r} is not one of {list(allowed)}")

        one_of("answer_mode", ANSWER_MODES)
        one_of("candidates", CANDIDATE_SOURCES)
        one_of("category_key", ("auto", "category_id", "category"))
        one_of("executor", ("local", "ray"))
        one_of("manager_unit", ("turn", "session"))
        one_of("manager_prompt", ("compact", "memory_r1"))
        one_of("answer_extraction", ("lenient", "strict"))
        one_of("data_format", ("auto", "jsonl", "locomo", "longmemeval", "timedial"))
        for g in self.also_by:
            if g not in GROUPINGS:
                raise ValueError(f"also_by: {g!r} is not one of {sorted(GROUPINGS)}")
        unknown = [m for m in self.metrics if m not in ALL_METRICS]
        if unknown:
            raise ValueError(f"metrics: unknown {unknown}; choose from {ALL_METRICS}")
        if JUDGE_METRIC in self.metrics and not self.judge:
            raise ValueError("metrics: 'judge' needs a judge model (judge=transformers:PATH); there is no default "
                             "judge, and J is never reported as 0 without one")
        if self.answer_mode == "memory_t1" and self.candidates not in ("auto", "sessions"):
            raise ValueError("answer_mode 'memory_t1' selects sessions: candidates must be 'sessions' or 'auto'")
        if not self.seeds:
            raise ValueError("seeds: give at least one seed")
        if not 0.0 < self.ci_level < 1.0:
            raise ValueError(f"ci_level must be in (0, 1), got {self.ci_level}")
        for name in ("top_k_per_speaker", "top_k_sessions", "max_new_tokens", "manager_max_new_tokens",
                     "batch_size", "num_workers", "history_bins"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_questions", "bootstrap_samples"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.split != "all" and self.split not in self.splits:
            raise ValueError(f"split: {self.split!r} is neither 'all' nor one of {sorted(self.splits)}")
        return self

    def source(self) -> str:
        if self.candidates != "auto":
            return self.candidates
        return {"memory_t1": "sessions", "picker": "turns"}.get(self.answer_mode, "memories")


# ---- data --------------------------------------------------------------------------------------------------
def load_data(cfg: EvalConfig) -> list[Conversation]:
    """The conversations `cfg.data` names, read with the benchmark's loader or as common-schema JSONL."""
    if not cfg.data:
        raise ConfigError("data=FILE is required (the benchmark file, or common-schema JSONL)")
    path = Path(cfg.data)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    fmt = cfg.data_format
    if fmt == "auto":
        fmt = "jsonl" if path.is_dir() or path.suffix == ".jsonl" or cfg.benchmark == "synthetic" else cfg.benchmark
    if fmt == "jsonl":
        return read_conversations(path)
    from memrl.data.loaders import LOADERS, load

    if fmt not in LOADERS:
        raise ConfigError(f"benchmark {cfg.benchmark!r} has no loader ({sorted(LOADERS)}); give common-schema JSONL "
                          "or data_format=<loader>")
    try:
        return load(fmt, path, **dict(cfg.data_options))
    except TypeError as e:  # an unknown loader option
        raise ConfigError(f"data_options {dict(cfg.data_options)} do not fit the {fmt} loader: {e}") from None


def select_conversations(convs: list[Conversation], cfg: EvalConfig) -> list[Conversation]:
    """Apply the split and the conversation filter; an empty selection is an error that says why."""
    seen: set[str] = set()
    for c in convs:
        if c.conversation_id in seen:
            raise DataError(f"{cfg.data or 'input'}: duplicate conversation id {c.conversation_id!r}")
        seen.add(c.conversation_id)
    out = list(convs)
    if cfg.split != "all":
        ids = list(cfg.splits[cfg.split])
        if "*" in ids:
            named = {i for k, v in cfg.splits.items() if k != cfg.split for i in v}
            out = [c for c in out if c.conversation_id not in named or c.conversation_id in ids]
        else:
            out = [c for c in out if c.conversation_id in ids]
    if cfg.conversations:
        missing = sorted(set(cfg.conversations) - {c.conversation_id for c in out})
        if missing:
            raise ConfigError(f"conversations: {missing} not in the selected data "
                              f"(have {sorted(c.conversation_id for c in out)[:12]})")
        out = [c for c in out if c.conversation_id in set(cfg.conversations)]
    if not out:
        raise ConfigError(f"split {cfg.split!r} selects no conversation of {cfg.data or 'the input'} "
                          f"(it has {sorted(seen)[:12]}; split definition {cfg.splits.get(cfg.split)})")
    return out


def conversation_hash(conv: Conversation) -> str:
    return hashlib.sha256(json.dumps(conv.to_dict(), sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


# ---- policies ----------------------------------------------------------------------------------------------
@dataclass
class PolicyRef:
    """A policy as the driver knows it: enough to load it in a worker and to fingerprint it for the cache."""

    role: str  # "answerer" | "manager"
    kind: str  # "baseline" | "checkpoint" | "object"
    name: str
    spec: str | None = None  # what the user wrote
    baseline: str | None = None  # baseline name (kind baseline)
    backend: str | None = None  # transformers | vllm (kind checkpoint)
    path: str | None = None  # resolved checkpoint directory (kind checkpoint)
    fingerprint: str = ""
    deterministic: bool = True
    obj: Any = None  # the policy object itself (kind object)
    run: dict[str, Any] | None = None  # what the training run's config.yaml says (algo, role, base model)

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "name": self.name, "kind": self.kind, "path": self.path, "backend": self.backend,
                "training_run": self.run}


def _checkpoint_dir(raw: str, role: str, what: str) -> Path:
    """A checkpoint directory from a path that may be a run directory (final_model/, final_model/<role>/)."""
    from memrl.models import resolve_model
    from memrl.policies.baselines import ANSWER_BASELINES, MANAGER_BASELINES

    p = Path(resolve_model(raw, what)).expanduser()
    if not p.exists():
        names = sorted(ANSWER_BASELINES if role == "answerer" else MANAGER_BASELINES)
        extra = ", oracle" if role == "answerer" else ""
        raise ConfigError(f"{what}={raw}: no such checkpoint directory; expected a baseline name ({', '.join(names)}"
                          f"{extra}), transformers:PATH, a checkpoint directory or a run directory with final_model/")
    if (p / "final_model").is_dir():
        p = p / "final_model"
    if not ((p / "config.json").is_file() or (p / "adapter_config.json").is_file()) and (p / role).is_dir():
        p = p / role
    if not ((p / "config.json").is_file() or (p / "adapter_config.json").is_file()):
        raise ConfigError(f"{what}={raw}: {p} is not a checkpoint directory (no config.json or adapter_config.json)")
    return p


def _weights_fingerprint(p: Path) -> str:
    files = sorted(f for f in p.iterdir() if f.is_file() and (f.suffix in (".safetensors", ".json")))
    h = hashlib.sha256(str(p.resolve()).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def policy_ref(policy: Any, role: str, cfg: EvalConfig, what: str | None = None) -> PolicyRef:
    """Resolve a policy spec (or object) without loading any model; errors name the spec."""
    from memrl.policies.baselines import ANSWER_BASELINES, MANAGER_BASELINES

    what = what or ("policy" if role == "answerer" else "manager")
    if not isinstance(policy, str):
        method = "answer" if role == "answerer" else "decide"
        if not callable(getattr(policy, method, None)):
            raise ConfigError(f"{what}: {type(policy).__name__} has no {method}() method (not a {role})")
        name = str(getattr(policy, "name", type(policy).__name__))
        sampling = getattr(policy, "sampling", None)
        if hasattr(policy, "backend"):
            # A live model: its weights may change between calls (training), so its answers are never reused.
            fp = f"live:{uuid.uuid4().hex}"
        else:
            simple = {k: v for k, v in vars(policy).items()
                      if not k.startswith("_") and isinstance(v, (str, int, float, bool, type(None)))}
            fp = f"{type(policy).__module__}.{type(policy).__qualname__}:{name}:{json.dumps(simple, sort_keys=True)}"
        deterministic = getattr(sampling, "temperature", 0.0) == 0.0
        return PolicyRef(role, "object", name, fingerprint=fp, deterministic=deterministic, obj=policy)
    spec = policy.strip()
    if not spec:
        raise ConfigError(f"{what}= is empty; give a baseline name or a checkpoint")
    table = ANSWER_BASELINES if role == "answerer" else MANAGER_BASELINES
    base = POLICY_ALIASES.get(spec, spec) if role == "answerer" else spec
    if base in table:
        return PolicyRef(role, "baseline", spec, spec, baseline=base, fingerprint=f"baseline:{base}")
    if spec in ANSWER_BASELINES or spec in MANAGER_BASELINES or spec in POLICY_ALIASES:
        raise ConfigError(f"{what}={spec}: that baseline is not a {role}; {role}s: {sorted(table)}")
    kind, sep, raw = spec.partition(":")
    if not sep or kind not in BACKEND_KINDS:
        kind, raw = "transformers", spec
    path = _checkpoint_dir(raw, role, what)
    return PolicyRef(role, "checkpoint", path.name if path.name not in ("final_model", role) else str(path), spec,
                     backend="transformers" if kind == "hf" else kind, path=str(path),
                     fingerprint=f"{kind}:{_weights_fingerprint(path)}", deterministic=cfg.temperature == 0.0,
                     run=_run_info(path))


def _run_info(model_dir: Path) -> dict[str, Any] | None:
    """algo / role / base model from the config.yaml of the run directory a final_model/ sits in, if any."""
    for run_dir in (model_dir.parent, model_dir.parent.parent):
        f = run_dir / "config.yaml"
        if model_dir.name in ("final_model", "answerer", "manager") and f.is_file():
            try:
                from omegaconf import OmegaConf

                c = OmegaConf.to_container(OmegaConf.load(f))
            except Exception:  # noqa: BLE001 - a foreign or broken config: the evaluation does not depend on it
                return {"run_dir": str(run_dir), "config": "unreadable"}
            if isinstance(c, dict):
                model = c.get("model") if isinstance(c.get("model"), dict) else {}
                return {"run_dir": str(run_dir), "algo": c.get("algo"), "role": c.get("role"),
                        "base_model": model.get("path")}
    return None


_LOADED: dict[tuple, Any] = {}  # models loaded in this process (a worker serves many conversations)


def load_policy(ref: PolicyRef, cfg: EvalConfig) -> Any:
    """The policy object of a reference (baselines fresh per call; checkpoints loaded once per process)."""
    if ref.kind == "object":
        return ref.obj
    from memrl.policies.baselines import make_baseline

    if ref.kind == "baseline":
        return make_baseline(ref.baseline)
    from memrl.policies.backends import SamplingParams, make_backend
    from memrl.policies.llm import LLMAnswerer, LLMManager

    if cfg.torch_threads:
        import torch

        torch.set_num_threads(cfg.torch_threads)
    key = (ref.role, ref.backend, ref.path, ref.fingerprint, cfg.device, cfg.batch_size, cfg.answer_mode,
           cfg.manager_prompt, cfg.temperature, cfg.max_new_tokens, cfg.manager_max_new_tokens)
    if key not in _LOADED:
        kwargs = {"device": cfg.device, "batch_size": cfg.batch_size} if ref.backend == "transformers" else {}
        backend = make_backend(f"{ref.backend}:{ref.path}", **kwargs)
        if ref.role == "answerer":
            sampling = SamplingParams(temperature=cfg.temperature, max_tokens=cfg.max_new_tokens)
            _LOADED[key] = LLMAnswerer(backend, mode=cfg.answer_mode, sampling=sampling, name=ref.name)
        else:
            sampling = SamplingParams(temperature=cfg.temperature, max_tokens=cfg.manager_max_new_tokens)
            _LOADED[key] = LLMManager(backend, prompt=cfg.manager_prompt, sampling=sampling, name=ref.name)
    return _LOADED[key]


@contextlib.contextmanager
def _sampling_seed(policy: Any, seed: int):
    """Give an LLM policy's sampling params this seed for the duration (restored afterwards)."""
    sp = getattr(policy, "sampling", None)
    if sp is None or not dataclasses.is_dataclass(sp) or not hasattr(sp, "seed"):
        yield
        return
    policy.sampling = dataclasses.replace(sp, seed=seed)
    try:
        yield
    finally:
        policy.sampling = sp


def make_judge(cfg: EvalConfig, out: Path | None):
    """The LLM judge of `cfg.judge` (cache in out/judge_cache.jsonl), or None. A bad spec is a ConfigError."""
    if not cfg.judge:
        return None
    kind, sep, raw = cfg.judge.partition(":")
    if not sep or kind not in BACKEND_KINDS:
        kind, raw = "transformers", cfg.judge
    from memrl.models import resolve_model

    p = Path(resolve_model(raw, "judge")).expanduser()
    if not p.is_dir():
        raise ConfigError(f"judge={cfg.judge}: judge model directory {p} not found; the judge metric needs a local "
                          "model (transformers:PATH). Remove 'judge' from metrics to evaluate without it.")
    if (p / "final_model").is_dir():
        p = p / "final_model"
    from memrl.policies.backends import make_backend  # torch: only once the judge model is known to exist
    from memrl.policies.judge import LLMJudge

    kwargs = {"device": cfg.device, "batch_size": cfg.batch_size} if kind in ("transformers", "hf") else {}
    backend = make_backend(f"{kind}:{p}", **kwargs)
    try:
        return LLMJudge(backend, cfg.judge_prompt, cache_path=(out / "judge_cache.jsonl") if out else None)
    except ValueError as e:
        raise ConfigError(f"judge_prompt: {e}") from None


# ---- one conversation ----------------------------------------------------------------------------------------
_ID_REJECTIONS = ("unknown id", "stale id", "UPDATE without an id", "DELETE without an id")


class BankStats:
    """Counts op-level statistics while the answer environment's CandidateBuilder has the manager write the
    bank (its `on_bank_step` hook; the builder then scores each step, which yields the op pairs)."""

    def __init__(self, manager_name: str):
        self.stats: dict[str, Any] = {"manager": manager_name, "steps": 0, "format_failures": 0, "ops_proposed": 0,
                                      "id_ops_proposed": 0, "rejected": 0, "rejected_id": 0, "op_pairs": [],
                                      "memory_size": 0, "memory_versions": 0}
        self.first: float | None = None
        self.last: float | None = None

    def __call__(self, ep, step, outcome) -> None:
        s = self.stats
        now = time.perf_counter()
        self.first = self.first if self.first is not None else now
        self.last = now
        s["steps"] += 1
        if not outcome.parse.ok:
            s["format_failures"] += 1
        s["ops_proposed"] += len(outcome.parse.ops)
        s["id_ops_proposed"] += sum(op.op in ("UPDATE", "DELETE") for op in outcome.parse.ops)
        s["rejected"] += len(outcome.result.rejected)
        s["rejected_id"] += sum(r.reason.startswith(_ID_REJECTIONS) for r in outcome.result.rejected)
        if outcome.parse.ok:
            s["op_pairs"].extend([list(p) for p in outcome.info.get("op_pairs", [])])
        elif step.has_gold:
            # An unparsable completion changed nothing: each gold op of the step met a NOOP (the pairing rule
            # of manager_env._op_pairs with no predicted ops), so format failures count against op accuracy.
            s["op_pairs"].extend([[g.op, "NOOP"] for g in step.gold_ops if g.op != "NOOP" or g.entry])
        s["memory_size"] = len(ep.bank)
        s["memory_versions"] = ep.bank.num_versions


def _gold_memory_size(conv: Conversation, bank_cfg: Any) -> int | None:
    """Current entries after the gold operations (the reference for a manager's memory size)."""
    if not conv.gold_ops:
        return None
    from memrl.envs.manager_env import drive
    from memrl.policies.baselines import GoldOpsManager

    (ep,) = drive([conv], GoldOpsManager(), bank_cfg, score=False)
    return len(ep.bank)


def _answer_env_config(cfg: EvalConfig, seed: int):
    from memrl.envs import AnswerEnvConfig, ManagerEnvConfig

    return AnswerEnvConfig(
        mode=cfg.answer_mode, candidates=cfg.candidates, k_per_speaker=cfg.top_k_per_speaker,
        top_k_sessions=cfg.top_k_sessions, time_filter=cfg.time_filter, include_gold=False,
        shuffle=cfg.shuffle_candidates, budget=0, manager=cfg.default_manager,
        bank=ManagerEnvConfig(unit=cfg.manager_unit, prompt=cfg.manager_prompt, probes="none"),
        skip_categories=[str(c) for c in cfg.skip_categories], seed=seed,
    )


def _positions(conv: Conversation) -> tuple[dict[str, int], list[tuple[str | None, int]]]:
    """Turn id -> position, and (session time, turns up to and including that session) per session."""
    pos: dict[str, int] = {}
    cumulative = []
    for s in conv.sessions:
        for t in s.turns:
            pos[t.turn_id] = len(pos)
        cumulative.append((s.timestamp, len(pos)))
    return pos, cumulative


def _history(q, pos, cumulative) -> tuple[int, int | None]:
    """(turns said before the question, turns between the earliest evidence turn and the question)."""
    n = 0
    for ts, upto in cumulative:
        if q.question_time is None or ts is None or ts <= q.question_time:
            n = upto
    ev = [pos[t] for t in q.evidence_turn_ids if t in pos and pos[t] < n]
    return n, (n - min(ev)) if ev else None


def _run_seed(conv: Conversation, cfg: EvalConfig, answerer: Any, manager: Any | None,
              seed: int) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    from memrl.envs.answer_env import CandidateBuilder
    from memrl.policies.baselines import make_baseline
    from memrl.rewards.temporal import session_proximity

    acfg = _answer_env_config(cfg, seed)
    source = cfg.source()
    bank_manager, hook = None, None
    if source == "memories":
        # The builder's "auto" would pick the gold ops on synthetic data; without a manager we say which one.
        bank_manager = manager if manager is not None else make_baseline(cfg.default_manager)
        hook = BankStats(str(getattr(bank_manager, "name", type(bank_manager).__name__)))
    builder = CandidateBuilder([conv], acfg, bank_manager, on_bank_step=hook)
    eligible = builder.eligible()
    if cfg.max_questions:
        eligible = eligible[: cfg.max_questions]
    t0 = time.perf_counter()
    pairs = [builder.request(ci, qi) for ci, qi in eligible]
    requests_s = time.perf_counter() - t0
    stats = None
    if hook is not None:
        stats = dict(hook.stats, default_manager=manager is None, requests_s=requests_s,
                     bank_build_s=(hook.last - hook.first) if hook.first is not None else 0.0,
                     gold_memory_size=_gold_memory_size(conv, acfg.bank))
    requests = [r for r, _ in pairs]
    t0 = time.perf_counter()
    from memrl.eval.realmodel import answer_with_progress

    parses = answer_with_progress(answerer, requests, cfg, conv.conversation_id) if requests else []
    elapsed = time.perf_counter() - t0
    if len(parses) != len(requests):
        raise ValueError(f"answer policy {getattr(answerer, 'name', answerer)!r} returned {len(parses)} answers "
                         f"for {len(requests)} questions of {conv.conversation_id}")
    latency = elapsed / max(1, len(requests))
    name = getattr(answerer, "name", "")
    pos, cumulative = _positions(conv)
    dialogue_tokens = sum(len(t.text.split()) for _, t in conv.turns())
    turns = conv.turn_index()
    records = []
    for (req, row), p in zip(pairs, parses):
        q = req.question
        by_id = {c.id: c for c in req.candidates}
        picked_ids = list(dict.fromkeys(str(i) for i in (getattr(p, "selected_ids", None) or [])))
        picked = [by_id[i] for i in picked_ids if i in by_id]
        if source == "sessions":
            gold = list(q.evidence_session_ids)
            ev_of = lambda c: [c.doc_id]
        else:
            gold = list(q.evidence_turn_ids)
            ev_of = lambda c: list(c.source_ids)
        gold_set = set(gold)
        ok = bool(getattr(p, "ok", False))
        from memrl.eval.lenient import scored_answer

        prediction, rule = scored_answer(p, cfg.answer_mode, cfg.answer_extraction)
        scores: dict[str, float | None] = {}
        if cfg.answer_mode != "picker":
            scores.update(score_answer(prediction, q.answer, q.category_id, q.category))
        scores.update(evidence_scores(
            [e for c in picked for e in ev_of(c)], [e for c in req.candidates for e in ev_of(c)], gold,
            len(picked), sum(bool(set(ev_of(c)) & gold_set) for c in picked)))
        in_range = None
        if source == "sessions" and q.time_range and picked:
            in_range = sum(session_proximity(c.time, q.time_range) == 1.0 for c in picked) / len(picked)
        scores["temporal_in_range"] = in_range
        if name in _READS_WHOLE_DIALOGUE:
            tokens = dialogue_tokens
        elif name in _READS_EVIDENCE_TURNS:
            tokens = sum(len(turns[t][1].text.split()) for t in q.evidence_turn_ids if t in turns)
        else:
            tokens = sum(len(c.text.split()) for c in req.candidates)
        history_turns, distance = _history(q, pos, cumulative)
        records.append({
            "uid": f"{conv.conversation_id}::{q.question_id}",
            "conversation_id": conv.conversation_id, "question_id": q.question_id, "seed": seed,
            "category": q.category, "category_id": q.category_id,
            "abstention": bool(q.meta.get("abstention")),
            "question": q.question, "gold": q.answer, "prediction": prediction,
            "parse_ok": ok, "parse_error": getattr(p, "error", None), "answer_rule": rule,
            "raw_completion": getattr(p, "raw", None),
            "selected_ids": picked_ids, "unknown_selected": len(picked_ids) - len(picked),
            "num_candidates": len(req.candidates), "gold_in_candidates": bool(row.get("gold_in_candidates")),
            "tokens_read": tokens, "latency_s": latency,
            "history_turns": history_turns, "evidence_distance": distance,
            "scores": scores,
        })
    if stats is not None:
        stats["answer_s"] = elapsed
    return records, stats


def evaluate_conversation(task: dict[str, Any]) -> dict[str, Any]:
    """Executor task (top-level, picklable): every seed of one conversation; writes its cache file if asked."""
    conv: Conversation = task["conversation"]
    cfg: EvalConfig = task["config"]
    answerer = load_policy(task["answerer"], cfg)
    manager = load_policy(task["manager"], cfg) if task["manager"] is not None else None
    records: list[dict[str, Any]] = []
    stats: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for seed in task["seeds"]:
        with _sampling_seed(answerer, seed), (_sampling_seed(manager, seed) if manager is not None
                                              else contextlib.nullcontext()):
            recs, st = _run_seed(conv, cfg, answerer, manager, seed)
        records.extend(recs)
        if st is not None:
            stats.append(dict(st, seed=seed))
    payload = {"format": CACHE_FORMAT, "key": task["key"], "conversation_id": conv.conversation_id,
               "records": records, "manager_stats": stats, "seconds": time.perf_counter() - t0}
    if task.get("cache_path"):
        write_json(task["cache_path"], payload)
    return payload


def _cache_name(cid: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", cid)
    if safe != cid or len(safe) > 100:
        safe = f"{safe[:80]}-{hashlib.sha256(cid.encode()).hexdigest()[:10]}"
    return f"{safe}.json"


def _read_cache(path: Path, key: str) -> dict[str, Any] | None:
    """The cached payload if it exists, is readable and has this key; else None (and the shard reruns)."""
    if not path.is_file():
        return None
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
        log.warning("%s: unreadable evaluation cache (%s); recomputing that conversation", path, e)
        return None
    if not isinstance(payload, dict) or payload.get("format") != CACHE_FORMAT or payload.get("key") != key \
            or not isinstance(payload.get("records"), list):
        return None
    return payload


# ---- the driver ------------------------------------------------------------------------------------------------
def _matches(r: dict[str, Any], names: set[str]) -> bool:
    return str(r["category"]) in names or (r["category_id"] is not None and str(r["category_id"]) in names) \
        or ("abstention" in names and r["abstention"])


def _category_key(cfg: EvalConfig, records: list[dict[str, Any]]) -> str:
    if cfg.category_key != "auto":
        return cfg.category_key
    ints = all(isinstance(r["category_id"], int) and not isinstance(r["category_id"], bool) for r in records)
    return "category_id" if records and ints else "category"


def _protocol_key(cfg: EvalConfig, ans: PolicyRef, man: PolicyRef | None, seeds: list[int]) -> dict[str, Any]:
    """What the per-question results depend on (hashed into every cache key)."""
    fields = ("benchmark", "default_manager", "max_questions", "skip_categories", "answer_mode", "candidates",
              "top_k_per_speaker", "top_k_sessions", "time_filter", "shuffle_candidates", "manager_unit",
              "manager_prompt", "temperature", "max_new_tokens", "manager_max_new_tokens")
    return {"format": CACHE_FORMAT, "memrl": __version__, **{f: getattr(cfg, f) for f in fields},
            "answerer": ans.fingerprint, "manager": man.fingerprint if man else None, "seeds": seeds}


def evaluate(conversations: list[Conversation], answerer: Any, manager: Any = None,
             config: EvalConfig | None = None, out_dir: str | Path | None = None, executor: Any = None) -> dict:
    """Evaluate `answerer` (behind `manager`, if given) on `conversations`; the results dict of results.json.

    answerer / manager: policy objects (baselines, LLM policies) or spec strings ("bm25", "oracle", "abstain",
    "transformers:/path", a checkpoint or run directory). With `out_dir` (or config.out) it writes
    results.json, predictions.jsonl, report.md, plots and the per-conversation cache, and resumes from it.
    """
    cfg = dataclasses.replace(config) if config is not None else EvalConfig()
    try:
        cfg.validate()
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if cfg.judge and JUDGE_METRIC not in cfg.metrics:
        cfg.metrics = [*cfg.metrics, JUDGE_METRIC]
    out = Path(out_dir) if out_dir else (Path(cfg.out) if cfg.out else None)
    convs = select_conversations(list(conversations), cfg)
    ans = policy_ref(answerer, "answerer", cfg)
    man = policy_ref(manager, "manager", cfg) if manager is not None else None
    judge = make_judge(cfg, out)  # before any work: a missing judge model fails now, not after the run
    deterministic = ans.deterministic and (man is None or man.deterministic) and not cfg.shuffle_candidates
    seeds = list(cfg.seeds[:1]) if deterministic else list(cfg.seeds)
    base_key = _protocol_key(cfg, ans, man, seeds)
    base_hash = hashlib.sha256(json.dumps(base_key, sort_keys=True, default=str).encode()).hexdigest()[:16]

    started = time.perf_counter()
    hashes = {c.conversation_id: conversation_hash(c) for c in convs}
    payloads: dict[str, dict[str, Any]] = {}
    tasks = []
    for conv in convs:
        key = f"{base_hash}-{hashes[conv.conversation_id]}"
        cache_path = out / "cache" / _cache_name(conv.conversation_id) if out else None
        cached = _read_cache(cache_path, key) if (cache_path is not None and cfg.resume) else None
        if cached is not None:
            payloads[conv.conversation_id] = cached
            continue
        tasks.append({"conversation": conv, "config": cfg, "answerer": ans, "manager": man, "seeds": seeds,
                      "key": key, "cache_path": str(cache_path) if cache_path else None})
    if payloads:
        log.info("resuming: %d of %d conversations cached under %s", len(payloads), len(convs), out / "cache")
    if tasks:
        if executor is None:
            from memrl.dist import make_executor

            executor = make_executor(cfg.executor, cfg.num_workers, cfg.ray_address, progress=cfg.progress)
        for task, payload in zip(tasks, executor.map(evaluate_conversation, tasks, desc="eval")):
            payloads[task["conversation"].conversation_id] = payload
    ordered = [payloads[c.conversation_id] for c in convs]
    records = [r for p in ordered for r in p["records"]]
    judge_stats = _run_judge(judge, records, cfg) if judge is not None else None
    results = assemble_results(records, [s for p in ordered for s in p.get("manager_stats") or []], cfg, ans, man,
                               convs, seeds, judge=judge, judge_stats=judge_stats, conv_hashes=hashes)
    results["efficiency"]["wall_s"] = time.perf_counter() - started
    results["efficiency"]["conversations_from_cache"] = len(convs) - len(tasks)
    if out is not None:
        write_outputs(out, results, records, cfg)
    return results


def _run_judge(judge: Any, records: list[dict[str, Any]], cfg: EvalConfig) -> dict[str, Any]:
    """Judge every parsed answer (batched, cached); an unparsable answer scores 0 without asking."""
    todo = [r for r in records if r["prediction"] is not None and cfg.answer_mode != "picker"]
    for r in records:
        if r["prediction"] is None and cfg.answer_mode != "picker":
            r["scores"][JUDGE_METRIC] = 0.0
    scores = judge.judge([r["question"] for r in todo], [r["gold"] for r in todo],
                         [r["prediction"] or "" for r in todo]) if todo else []
    failures = 0
    for r, s in zip(todo, scores):
        r["scores"][JUDGE_METRIC] = s
        failures += s is None
    return {"judged": len(todo), "format_failures": failures, "unparsed_answers_scored_0": len(records) - len(todo),
            **{k: v for k, v in judge.stats.items() if k in ("generated", "cache_hits")}}


def assemble_results(records: list[dict[str, Any]], manager_stats: list[dict[str, Any]], cfg: EvalConfig,
                     ans: PolicyRef, man: PolicyRef | None, convs: list[Conversation], seeds: list[int],
                     judge: Any = None, judge_stats: dict[str, Any] | None = None,
                     conv_hashes: dict[str, str] | None = None) -> dict[str, Any]:
    key_field = _category_key(cfg, records)
    group_of, names, counts = {}, {}, {}
    for r in records:
        k = str(r[key_field]) if r[key_field] is not None else str(r["category"])
        group_of[r["uid"]] = k
        names.setdefault(k, str(r["category"]))
        if r["seed"] == seeds[0]:
            counts[k] = counts.get(k, 0) + 1
    excluded = {str(x) for x in cfg.exclude_from_overall}
    adversarial = {str(x) for x in cfg.adversarial_categories}
    headline = {r["uid"] for r in records if not _matches(r, excluded)}
    adv = {r["uid"] for r in records if _matches(r, adversarial)}
    extra = {g: {r["uid"]: str(r[GROUPINGS[g]]) for r in records if r[GROUPINGS[g]] is not None}
             for g in cfg.also_by}
    metrics = aggregate(records, cfg.metrics, group_of=group_of, group_names=names, headline=headline,
                        adversarial=adv, extra_groups=extra, num_history_bins=cfg.history_bins,
                        samples=cfg.bootstrap_samples, level=cfg.ci_level,
                        group_order=[str(c) for c in cfg.category_order])
    first = [r for r in records if r["seed"] == seeds[0]]
    latencies = sorted(r["latency_s"] for r in first)
    tokens_by_cat: dict[str, list[int]] = {}
    for r in first:
        tokens_by_cat.setdefault(group_of[r["uid"]], []).append(r["tokens_read"])
    bank_s = [s.get("bank_build_s", 0.0) for s in manager_stats if s.get("seed", seeds[0]) == seeds[0]]
    results = {
        "format": RESULTS_FORMAT,
        "protocol": build_protocol(cfg, ans, man, convs, seeds, key_field, names, counts, judge, conv_hashes),
        "metrics": metrics,
        "counts": {"conversations": len(convs), "questions": len(first), "records": len(records),
                   "by_category": {k: {"name": names[k], "n": counts.get(k, 0)} for k in metrics[cfg.metrics[0]]
                                   ["by_category"]} if cfg.metrics else {},
                   "overall": len([r for r in first if r["uid"] in headline]),
                   "adversarial": len([r for r in first if r["uid"] in adv])},
        "ops": op_metrics([s for s in manager_stats if s.get("seed", seeds[0]) == seeds[0]],
                          cfg.bootstrap_samples, cfg.ci_level),
        "format_failures": {"answers_unparsed": sum(not r["parse_ok"] for r in records),
                            "answers": len(records),
                            "rate": mean_or_none([float(not r["parse_ok"]) for r in records]),
                            "scored_leniently": sum(bool(r.get("answer_rule")) and r.get("answer_rule") != "format"
                                                    for r in records),
                            "no_answer": sum(r.get("prediction") is None for r in records),
                            "unknown_selected_ids": sum(r["unknown_selected"] for r in records)},
        "efficiency": {
            "tokens_read_per_answer": mean_or_none([r["tokens_read"] for r in first]),
            "tokens_read_by_category": {k: mean_or_none(v) for k, v in tokens_by_cat.items()},
            "latency_s_per_question": mean_or_none(latencies),
            "latency_s_p50": latencies[len(latencies) // 2] if latencies else None,
            "latency_s_p95": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))] if latencies else None,
            "bank_build_s_per_conversation": mean_or_none(bank_s),
        },
    }
    if judge_stats is not None:
        results["judge"] = judge_stats
    return results


def build_protocol(cfg: EvalConfig, ans: PolicyRef, man: PolicyRef | None, convs: list[Conversation],
                   seeds: list[int], key_field: str, names: dict[str, str], counts: dict[str, int],
                   judge: Any, conv_hashes: dict[str, str] | None = None) -> dict[str, Any]:
    """Everything a reader needs to know to compare a number with another paper's (anchors.md 8)."""
    from memrl.policies.prompts import PROMPTS

    source = cfg.source()
    if source == "memories":
        bank = (f"built turn by turn by the manager {man.name!r}" if man is not None else
                f"no manager given: built by the {cfg.default_manager!r} baseline (every candidate fact stored as "
                "said; on LoCoMo the raw turns)")
    else:
        bank = f"no memory bank: the answerer reads {source} directly"
    from memrl.envs.answer_env import ANSWER_PROMPT

    answer_prompt = ANSWER_PROMPT[cfg.answer_mode]
    hashes = conv_hashes or {}
    sha = hashlib.sha256("".join(hashes.get(c.conversation_id) or conversation_hash(c) for c in convs)
                         .encode()).hexdigest()[:16]
    excluded = [str(x) for x in cfg.exclude_from_overall]
    return {
        "name": cfg.protocol or cfg.benchmark,
        "benchmark": cfg.benchmark,
        "data": cfg.data or None,
        "data_fingerprint": sha,
        "split": cfg.split,
        "split_definition": list(cfg.splits[cfg.split]) if cfg.split != "all" else None,
        "conversations": [c.conversation_id for c in convs],
        "num_conversations": len(convs),
        "num_questions": sum(counts.values()),
        "max_questions_per_conversation": cfg.max_questions or None,
        "skipped_categories": [str(c) for c in cfg.skip_categories],
        "category_key": key_field,
        "category_mapping": {k: names[k] for k in sorted(names, key=lambda x: (len(x), x))},
        "category_counts": dict(sorted(counts.items(), key=lambda kv: (len(kv[0]), kv[0]))),
        "overall": f"micro mean over questions, excluding categories {excluded}" if excluded else
                   "micro mean over all questions",
        "exclude_from_overall": excluded,
        "adversarial_categories": [str(x) for x in cfg.adversarial_categories],
        "answerer": {**ans.describe(), "mode": cfg.answer_mode,
                     "prompt": f"{answer_prompt}@{PROMPTS[answer_prompt].version}" if ans.kind != "baseline" else None,
                     "frozen_during_eval": True, "trained": cfg.reader_trained},
        "manager": ({**man.describe(), "prompt": f"{'compact_manager' if cfg.manager_prompt == 'compact' else 'memory_r1_manager'}"}
                    if man is not None else {"spec": None, "name": cfg.default_manager if source == "memories" else None,
                                             "kind": "default" if source == "memories" else None}),
        "memory_bank": bank,
        "manager_unit": cfg.manager_unit,
        "candidates": {"source": source, "top_k_per_speaker": cfg.top_k_per_speaker,
                       "top_k_sessions": cfg.top_k_sessions if source == "sessions" else None,
                       "time_filter": cfg.time_filter if source == "sessions" else None,
                       "shuffle": cfg.shuffle_candidates, "retrieval": "BM25 (bm25s-compatible, Porter stems)"},
        "question_time": "the question's own time; LoCoMo has none, so the last session's (the bank as it stands "
                         "at the end)",
        "judge": ({"spec": cfg.judge, "prompt_version": cfg.judge_prompt, "temperature": 0.0,
                   "note": "local judge model: not comparable with GPT-4o(-mini) judged numbers"}
                  if judge is not None else None),
        "metrics": list(cfg.metrics),
        "metric_definitions": {m: ({**ANSWER_METRICS, **EVIDENCE_METRICS}.get(m) or
                                   "Mem0 CORRECT/WRONG LLM judge (1/0), unparsable verdicts excluded")
                               for m in cfg.metrics},
        "scale": "every metric in [0, 1]",
        "seeds": list(cfg.seeds),
        "seeds_run": seeds,
        "temperature": cfg.temperature,
        "max_new_tokens": cfg.max_new_tokens,
        "bootstrap": {"samples": cfg.bootstrap_samples, "level": cfg.ci_level, "unit": "question",
                      "method": "percentile"},
        "history_length": "evidence_distance: turns from the question's earliest evidence turn to the question",
        "memrl_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def write_outputs(out: Path, results: dict[str, Any], records: list[dict[str, Any]], cfg: EvalConfig) -> None:
    from memrl.config import save_resolved
    from memrl.eval.report import write_report

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", results)
    write_jsonl(out / "predictions.jsonl", records)
    save_resolved(cfg, out, "eval_config.yaml")
    write_report(out, results, records)


# ---- the command's entry point and the benchmark ---------------------------------------------------------------
def run_eval(cfg: EvalConfig, executor: Any = None) -> dict[str, Any]:
    """Load `cfg.data` and evaluate `cfg.policy` (behind `cfg.manager`): what `memrl eval` runs."""
    if not cfg.policy:
        raise ConfigError("policy=... is required (a baseline name such as bm25, oracle or abstain, "
                          "transformers:PATH, a checkpoint directory or a run directory)")
    try:
        cfg.validate()
    except ValueError as e:
        raise ConfigError(str(e)) from None
    # Resolve the policies before reading data so that a typo fails in milliseconds.
    policy_ref(cfg.policy, "answerer", cfg)
    if cfg.manager:
        policy_ref(cfg.manager, "manager", cfg)
    convs = load_data(cfg)
    return evaluate(convs, cfg.policy, cfg.manager or None, cfg, executor=executor)


def benchmark_eval_throughput(conversation: Conversation | str | Path, policy: str = "bm25", copies: int = 10,
                              metrics: list[str] | None = None) -> dict[str, Any]:
    """Questions/s of the evaluation pipeline (bank, retrieval, answering, scoring) on `copies` copies of a
    conversation (10 x LoCoMo conv-26 = 1,990 questions, the size of locomo10), local executor, no files."""
    if not isinstance(conversation, Conversation):
        from memrl.data.loaders import load_locomo

        conversation = load_locomo(conversation)[0]
    base = conversation.to_dict()
    convs = []
    for k in range(copies):
        d = json.loads(json.dumps(base))
        d["conversation_id"] = f"{conversation.conversation_id}#{k}"
        convs.append(Conversation.from_dict(d))
    cfg = EvalConfig(benchmark="locomo", progress=False, bootstrap_samples=200,
                     metrics=list(metrics or DEFAULT_METRICS))
    evaluate(convs[:1], policy, config=dataclasses.replace(cfg, max_questions=2))  # warm-up: imports, stemmer
    t0 = time.perf_counter()
    res = evaluate(convs, policy, config=cfg)
    seconds = time.perf_counter() - t0
    n = res["counts"]["questions"]
    return {"policy": policy, "conversations": copies, "questions": n, "seconds": round(seconds, 3),
            "questions_per_s": round(n / seconds, 1), "executor": "local",
            "bank": res["protocol"]["memory_bank"], "metrics": list(cfg.metrics)}
