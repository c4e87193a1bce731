"""The evaluation engine: any answer policy (optionally behind any memory manager) on any loaded benchmark.

    results = evaluate(conversations, "bm25", manager=None, config=EvalConfig(benchmark="locomo"), out_dir="runs/x")

One conversation is one shard (`memrl.dist` executor, local or Ray). Per shard and seed:

1. **Bank.** With memory candidates (the default), a manager writes the bank turn by turn through the
   manager environment (`memrl.envs.manager.episode.drive_manager`, inside the answer environment's `CandidateBuilder`, which
   keeps the bank as it stood at each question's time and retrieves top-k per speaker, Memory-R1's 30 + 30
   by default). The builder's `on_bank_step` hook has each step scored, which counts op-level agreement with
   gold ops, rejected ids and unparsable completions in the same single pass. Without a manager, the bank is
   built by `default_manager` (`add_only`: every candidate fact stored as said, i.e. the raw turns on
   LoCoMo; no updates, no deletes), and the protocol says so.
2. **Answers.** All requests of the conversation go to the answer policy in one `answer()` call (LLM
   policies batch them); latency per question is that call's wall time over its questions.
3. **Scores.** Every answer metric (memrl.eval.metrics) and the evidence metrics of the selected candidates,
   tokens read (whitespace tokens of the candidates given; the whole dialogue for `bm25_turns`), and the
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
from pathlib import Path
from typing import Any

from memrl import __version__
from memrl.config import ConfigError, save_resolved
from memrl.data.io import write_json, write_jsonl
from memrl.data.schema import Conversation
from memrl.dist import make_executor
from memrl.envs.answer.candidates import CandidateBuilder
from memrl.envs.answer.config import AnswerEnvConfig
from memrl.envs.manager.config import ManagerEnvConfig
from memrl.envs.manager.episode import drive_manager
from memrl.eval.config import (
    CACHE_FORMAT,
    GROUPINGS,
    READS_EVIDENCE_TURNS,
    READS_WHOLE_DIALOGUE,
    RESULTS_FORMAT,
    EvalConfig,
    conversation_hash,
    load_data,
    select_conversations,
)
from memrl.eval.guards import check_benchmark, check_skip_categories
from memrl.eval.metrics import (
    ANSWER_METRICS,
    EVIDENCE_METRICS,
    JUDGE_METRIC,
    aggregate,
    evidence_scores,
    mean_or_none,
    op_metrics,
    score_answer,
)
from memrl.eval.notes import add_notes
from memrl.eval.policies import PolicyRef, load_policy, make_judge, policy_ref, sampling_seed
from memrl.eval.realmodel import answer_with_progress
from memrl.eval.report import write_report
from memrl.hardware import dtype_rule
from memrl.policies.baselines import GoldOpsManager, make_baseline
from memrl.protocol import modes
from memrl.protocol.generation import PLAIN_PROMPT
from memrl.rewards.temporal import session_proximity

log = logging.getLogger(__name__)




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

    (ep,) = drive_manager([conv], GoldOpsManager(), bank_cfg.for_oracle_manager(), score=False)
    return len(ep.bank)


def _answer_env_config(cfg: EvalConfig, seed: int):

    return AnswerEnvConfig(
        answer_mode=cfg.answer_mode, candidates=cfg.candidates, k_per_speaker=cfg.top_k_per_speaker,
        top_k_sessions=cfg.top_k_sessions, time_filter=cfg.time_filter, include_gold=False,
        shuffle=cfg.shuffle_candidates, budget=0, manager=cfg.default_manager,
        bank=ManagerEnvConfig(unit=cfg.manager_unit, prompt=cfg.manager_prompt, probes="none",
                              related_k=cfg.manager_related_k, max_related=cfg.manager_max_related),
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
    mode = modes.get(cfg.answer_mode)
    records = []
    for (req, row), p in zip(pairs, parses):
        q = req.question
        by_id = {c.id: c for c in req.candidates}
        picked_ids = list(dict.fromkeys(str(i) for i in (getattr(p, "selected_ids", None) or [])))
        picked = [by_id[i] for i in picked_ids if i in by_id]
        # Answerers that read turns themselves (oracle_evidence, bm25_turns) select turn ids, not candidate ids.
        direct = ([i for i in picked_ids if i not in by_id and i in turns]
                  if source != "sessions" and name in READS_WHOLE_DIALOGUE | READS_EVIDENCE_TURNS else [])
        if source == "sessions":
            gold = list(q.evidence_session_ids)
            ev_of = lambda c: [c.doc_id]
        else:
            gold = list(q.evidence_turn_ids)
            ev_of = lambda c: list(c.source_ids)
        gold_set = set(gold)
        ok = bool(getattr(p, "ok", False))
        prediction, rule = mode.scored_answer(p, cfg.answer_extraction)
        scores: dict[str, float | None] = {}
        if mode.answers:
            scores.update(score_answer(prediction, q.answer, q.category_id, q.category,
                                       official_prediction=getattr(p, "official_answer", None)))
        scores.update(evidence_scores(
            [e for c in picked for e in ev_of(c)] + direct, [e for c in req.candidates for e in ev_of(c)], gold,
            len(picked) + len(direct),
            sum(bool(set(ev_of(c)) & gold_set) for c in picked) + sum(i in gold_set for i in direct)))
        in_range = None
        if source == "sessions" and q.time_range and picked:
            in_range = sum(session_proximity(c.time, q.time_range) == 1.0 for c in picked) / len(picked)
        scores["temporal_in_range"] = in_range
        if name in READS_WHOLE_DIALOGUE:
            tokens = dialogue_tokens
        elif name in READS_EVIDENCE_TURNS:
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
            "selected_ids": picked_ids, "unknown_selected": len(picked_ids) - len(picked) - len(direct),
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
        with sampling_seed(answerer, seed), (sampling_seed(manager, seed) if manager is not None
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
              "manager_prompt", "manager_related_k", "manager_max_related", "temperature", "max_new_tokens",
              "manager_max_new_tokens", "dtype")
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
    check_skip_categories(cfg, convs)
    ans = policy_ref(answerer, "answerer", cfg)
    man = policy_ref(manager, "manager", cfg) if manager is not None else None
    for ref in (ans, man):  # said once per evaluation; results.json records it under protocol.<role>.prompt_format
        if ref is not None and ref.prompt_format == PLAIN_PROMPT:
            log.warning("%s: %s has no chat template; its prompts are plain text (the messages' contents joined by "
                        "a blank line). Give chat_template=chatml or chat_template=FILE to use a template",
                        ref.spec, ref.path)
    if ans.kind == "predictions":  # the file must belong to the data: checked here, before any question is answered
        load_policy(ans, cfg).check_data(conversations, convs, {str(c) for c in cfg.skip_categories},
                                         source=cfg.data or "the data")
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
    answers = modes.get(cfg.answer_mode).answers  # a picker gives no answer to judge
    todo = [r for r in records if r["prediction"] is not None and answers]
    for r in records:
        if r["prediction"] is None and answers:
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
        "protocol": seed_note(add_notes(build_protocol(cfg, ans, man, convs, seeds, key_field, names, counts,
                                                       judge, conv_hashes), convs), cfg, ans, man),
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


def seed_note(protocol: dict[str, Any], cfg: EvalConfig, ans: PolicyRef, man: PolicyRef | None) -> dict[str, Any]:
    """Say why fewer seeds ran than were listed: deterministic policies give the same answers under every seed."""
    skipped = [s for s in cfg.seeds if s not in protocol["seeds_run"]]
    if skipped:
        who = ans.name if man is None else f"{ans.name} behind {man.name}"
        protocol.setdefault("notes", []).append(
            f"seeds: {who} is deterministic (no sampling, no seeded choice), so only seed "
            f"{protocol['seeds_run'][0]} ran; seeds {skipped} would repeat its answers exactly")
    return protocol


def build_protocol(cfg: EvalConfig, ans: PolicyRef, man: PolicyRef | None, convs: list[Conversation],
                   seeds: list[int], key_field: str, names: dict[str, str], counts: dict[str, int],
                   judge: Any, conv_hashes: dict[str, str] | None = None) -> dict[str, Any]:
    """Everything a reader needs to know to compare a number with another paper's (anchors.md 8)."""

    source = cfg.source()
    if source == "memories":
        bank = (f"built turn by turn by the manager {man.name!r}" if man is not None else
                f"no manager given: built by the {cfg.default_manager!r} baseline (every candidate fact stored as "
                "said; on LoCoMo the raw turns)")
    else:
        bank = f"no memory bank: the answerer reads {source} directly"

    answer_prompt = modes.get(cfg.answer_mode).prompt_id
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
                     "prompt": answer_prompt if ans.kind != "baseline" else None,
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
        "dtype": {"setting": cfg.dtype, "rule": dtype_rule(cfg.dtype, cfg.device)} if ans.kind != "baseline" else None,
        "bootstrap": {"samples": cfg.bootstrap_samples, "level": cfg.ci_level, "unit": "question",
                      "method": "percentile"},
        "history_length": "evidence_distance: turns from the question's earliest evidence turn to the question",
        "memrl_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def write_outputs(out: Path, results: dict[str, Any], records: list[dict[str, Any]], cfg: EvalConfig) -> None:

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
    check_benchmark(cfg, convs)
    return evaluate(convs, cfg.policy, cfg.manager or None, cfg, executor=executor)
