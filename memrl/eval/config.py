"""`EvalConfig` and what is evaluated: the protocol's constants, loading and selecting conversations."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from memrl.config import ConfigError
from memrl.data.io import DataError
from memrl.data.loaders import LOADERS, load_conversations
from memrl.data.schema import Conversation
from memrl.eval.metrics import (
    ALL_METRICS,
    JUDGE_METRIC,
    MIN_TAIL_RESAMPLES,
    min_bootstrap_samples,
)
from memrl.protocol import modes
from memrl.protocol.generation import resolve_chat_template
from memrl.protocol.modes import CANDIDATE_SOURCES

CACHE_FORMAT = "memrl-eval-cache/1"
RESULTS_FORMAT = "memrl-eval-results/1"
# Memory-R1's 1:1:8 split of LoCoMo by conversation (benchmarks.md 1.8; "*" = every conversation not named
# by another split). Category 5 is excluded from its overall; 152 / 81 / 1,307 questions in categories 1-4.
MEMORY_R1_SPLIT = {"train": ["conv-26"], "validation": ["conv-30"], "test": ["*"]}
DEFAULT_METRICS = ["locomo_f1", "amem_f1", "bleu1", "em", "evidence_recall", "evidence_precision",
                   "retrieval_recall"]
POLICY_ALIASES = {"oracle": "gold_answer"}  # `policy=oracle` answers the gold answer
PREDICTIONS_PREFIX = "predictions:"  # `policy=predictions:FILE` replays a released results file, no model
BACKEND_KINDS = ("transformers", "hf", "vllm")
GROUPINGS = {"level": "category_id", "category_id": "category_id", "category": "category"}
# Answerers that read the dialogue themselves instead of the candidates they are given (tokens read).
READS_WHOLE_DIALOGUE = {"bm25_turns"}
READS_EVIDENCE_TURNS = {"oracle_evidence"}


@dataclass
class EvalConfig:
    """`memrl eval`: one field per knob, grouped by concern. Every field is recorded in results.json."""

    # ---- what is evaluated -------------------------------------------------------------------------------
    benchmark: str = "locomo"  # locomo | longmemeval | timedial | synthetic (names the loader and the defaults)
    protocol: str = ""  # the protocol's name printed with every result ("" = the benchmark's name)
    data: str = ""  # data file: the benchmark's own file, or common-schema JSONL / a datasets directory
    data_format: str = "auto"  # auto (.jsonl or a directory: common schema; else the benchmark's loader) | jsonl | locomo | longmemeval | timedial
    data_options: dict[str, str] = field(default_factory=dict)  # loader options (TIME-Dial: contexts, time_ranges)
    policy: str = ""  # answer policy: baseline name, oracle, abstain, transformers:PATH, a checkpoint or run directory, predictions:FILE (replay a released results file)
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
    answer_mode: str = "compact"  # a prompted mode of memrl.protocol.modes: compact | memory_r1 | picker | select | memory_t1 | short
    candidates: str = "auto"  # memories | turns | sessions | auto (the mode's own: memory_t1 sessions, picker turns, else memories)
    top_k_per_speaker: int = 30  # retrieval budget per speaker (Memory-R1 / Mem0: 30 + 30)
    top_k_sessions: int = 10  # Memory-T1: BM25 top-k sessions after the time filter
    time_filter: bool = True  # Memory-T1: keep sessions inside the question's time range
    shuffle_candidates: bool = False  # shuffle candidate order (seeded per question)
    manager_unit: str = "turn"  # manager step: "turn" or "session"
    manager_prompt: str = "compact"  # LLM manager prompt: compact | memory_r1
    manager_related_k: int = 5  # memories BM25 retrieves per candidate fact for the manager (Mem0: limit=5); match
    manager_max_related: int = 20  # the trained manager's view (memrl train's manager_env.related_k / max_related)
    answer_extraction: str = "lenient"  # lenient: score what the model answers (memrl/protocol/lenient.py rules; format failures still counted) | strict: only the **Answer:** format
    reader_trained: bool | None = None  # was the answer model RL-trained (True) or a frozen base reader (False)? anchors.md 8.4
    temperature: float = 0.0  # LLM sampling temperature (0 = greedy: one seed is enough)
    max_new_tokens: int = 128  # LLM answer length
    manager_max_new_tokens: int = 256  # LLM manager completion length
    chat_template: str = ""  # model policies' prompts: "" = the model's own chat template (plain text when it has none: the messages' contents joined by a blank line), plain, chatml, or a Jinja file
    batch_size: int = 16  # transformers backend batch size
    device: str = "auto"  # transformers backend device
    dtype: str = "auto"  # model weights: auto (transformers: bfloat16 where the hardware runs it natively, for
    #                      models >= 50M parameters; memrl.policies.backends.auto_dtype; vLLM: its own rule)
    #                      | float32 | bfloat16 (both backends)
    share_prefix: bool = True  # prefill a batch's common prompt prefix once (memrl.policies.prefix)
    torch_threads: int = 0  # torch intra-op threads for model policies (0 = torch's default)
    seeds: list[int] = field(default_factory=lambda: [0])  # sampling seeds (only the first runs when deterministic)
    # ---- metrics -----------------------------------------------------------------------------------------
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))  # see memrl.eval.metrics.ALL_METRICS
    judge: str | None = None  # LLM judge backend spec (transformers:PATH); None = no judge, no "judge" metric
    judge_prompt: str = "mem0_judge@1"  # judge template@version (Mem0's ACCURACY_PROMPT)
    bootstrap_samples: int = 1000  # percentile bootstrap resamples over questions (0 = no intervals; else >= 200 at ci_level 0.95)
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

        one_of("answer_mode", modes.names(prompted=True))
        one_of("dtype", ("auto", "float32", "bfloat16"))
        one_of("candidates", CANDIDATE_SOURCES)
        one_of("category_key", ("auto", "category_id", "category"))
        one_of("executor", ("local", "ray"))
        one_of("manager_unit", ("turn", "session"))
        one_of("manager_prompt", ("compact", "memory_r1"))
        one_of("answer_extraction", ("lenient", "strict"))
        one_of("data_format", ("auto", "jsonl", "locomo", "longmemeval", "timedial", "timedial_results"))
        for g in self.also_by:
            if g not in GROUPINGS:
                raise ValueError(f"also_by: {g!r} is not one of {sorted(GROUPINGS)}")
        unknown = [m for m in self.metrics if m not in ALL_METRICS]
        if unknown:
            raise ValueError(f"metrics: unknown {unknown}; choose from {ALL_METRICS}")
        if JUDGE_METRIC in self.metrics and not self.judge:
            raise ValueError("metrics: 'judge' needs a judge model (judge=transformers:PATH); there is no default "
                             "judge, and J is never reported as 0 without one")
        modes.get(self.answer_mode).check_candidates(self.candidates)
        resolve_chat_template(self.chat_template)  # ValueError naming the name or file
        if not self.seeds:
            raise ValueError("seeds: give at least one seed")
        if not 0.0 < self.ci_level < 1.0:
            raise ValueError(f"ci_level must be in (0, 1), got {self.ci_level}")
        for name in ("top_k_per_speaker", "top_k_sessions", "max_new_tokens", "manager_max_new_tokens",
                     "manager_related_k", "manager_max_related", "batch_size", "num_workers", "history_bins"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_questions < 0:
            raise ValueError(f"max_questions must be >= 0, got {self.max_questions}")
        need = min_bootstrap_samples(self.ci_level)
        if self.bootstrap_samples < 0 or 0 < self.bootstrap_samples < need:
            raise ValueError(f"bootstrap_samples must be 0 (no confidence intervals) or >= {need} for a "
                             f"{self.ci_level:g} interval, got {self.bootstrap_samples}: with fewer resamples "
                             f"fewer than {MIN_TAIL_RESAMPLES} fall beyond each end of the interval (1000, the "
                             "default, is the usual choice)")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.split != "all" and self.split not in self.splits:
            raise ValueError(f"split: {self.split!r} is neither 'all' nor one of {sorted(self.splits)}")
        return self

    def source(self) -> str:
        return modes.get(self.answer_mode).candidate_source(self.candidates)


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
        return load_conversations(path, "jsonl")
    if fmt not in LOADERS:
        raise ConfigError(f"benchmark {cfg.benchmark!r} has no loader ({sorted(LOADERS)}); give common-schema JSONL "
                          "or data_format=<loader>")
    try:
        return load_conversations(path, fmt, **dict(cfg.data_options))
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
    if not seen:
        raise DataError(f"{cfg.data or 'the input'} holds no conversations: nothing to evaluate (an empty file, or an "
                        "empty slice of a data split?)")
    if not out:
        ids = sorted(seen)
        shown = ", ".join(ids[:6]) + (f" and {len(ids) - 6} more" if len(ids) > 6 else "")
        raise ConfigError(f"split {cfg.split!r} (conversations {cfg.splits.get(cfg.split)}) selects no conversation "
                          f"of {cfg.data or 'the input'}, which holds {len(ids)}: {shown}")
    return out


def conversation_hash(conv: Conversation) -> str:
    return hashlib.sha256(json.dumps(conv.to_dict(), sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]
