"""Per-question scores -> the numbers of results.json: means, groupings and bootstrap confidence intervals.

Everything here is pure and cheap (numpy, no torch), so `memrl eval compare` and report rendering never load
a model. Two stages:

1. `score_answer(...)`: every answer metric of one question (a dict name -> float | None). None means
   "does not apply" (no gold evidence for evidence recall, no selection for precision, the picker mode has
   no answer) and is left out of every mean, never counted as 0.
2. `aggregate(records, ...)`: the `metrics` block of results.json. Per metric: `overall` (micro mean over the
   questions not excluded from the headline, e.g. LoCoMo categories 1-4), `overall_excl_adversarial`,
   `overall_all` (every question), `by_category` {key: {name, n, mean, ci95}}, optional extra groupings
   (`by_level` for TIME-Dial), `by_history` (accuracy vs history length) and `by_seed` when several seeds ran.

Confidence intervals are percentile bootstraps over questions (Efron; B = `bootstrap_samples`), seeded per
(metric, group) so that a number does not change when another group is added. `paired_difference` does the
same on per-question differences between two runs over their common questions (for `memrl eval compare`).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from memrl.memory.ops import OP_TYPES
from memrl.rewards.accuracy import amem_f1, bleu1, exact_match, locomo_f1, timedial_accuracy
from memrl.rewards.timedial_official import timedial_official

# Answer metrics (0-1) and what each is. `timedial_acc` is Memory-T1's task accuracy floored at 0 (its raw
# range is [-0.5, 1]: -0.5 for an unparsable timeline); the report states the floor.
ANSWER_METRICS: dict[str, str] = {
    "locomo_f1": "LoCoMo official F1 (Porter-stemmed multiset token F1; cat 1 comma-split, cat 3 gold cut at ';', "
                 "cat 5 abstention check)",
    "amem_f1": "A-Mem / Mem0 / Memory-R1 token-set F1 (simple_tokenize, no stemming)",
    "bleu1": "A-Mem / Mem0 BLEU-1 (nltk sentence_bleu, weights (1,0,0,0), smoothing method1)",
    "em": "exact match after LoCoMo normalization",
    "timedial_acc": "Memory-T1 task accuracy (option sets, duration within 1 day, graded dates, timeline), floored at 0",
    "timedial_official": "Memory-T1's published test scoring, quirks included (first option letter only, single-phrase "
                         "durations, dates within 1 day, timeline all-or-nothing; memrl.rewards.timedial_official)",
}
EVIDENCE_METRICS: dict[str, str] = {
    "evidence_recall": "share of the gold evidence turns (sessions for session candidates) the answerer selected",
    "evidence_precision": "share of the selected candidates that hold gold evidence (no selection: n/a)",
    "retrieval_recall": "share of the gold evidence turns (sessions) present among the candidates given",
    "temporal_in_range": "share of selected sessions whose date lies inside the question's time range (R_s = 1)",
}
JUDGE_METRIC = "judge"
ALL_METRICS = [*ANSWER_METRICS, JUDGE_METRIC, *EVIDENCE_METRICS]


def score_answer(prediction: str | None, gold: str, category_id: Any, task: Any,
                 official_prediction: str | None = None) -> dict[str, float]:
    """Every answer metric of one prediction (None = no parsable answer = 0 on all of them).

    `official_prediction`: the answer as Memory-T1's own parse extracted it, for `timedial_official`
    (a released `parsed_output["answer"]`; "" when their parse found none); None: `prediction`.
    """
    official = prediction if official_prediction is None else official_prediction
    official_score = timedial_official(official, gold, task) if official is not None else 0.0
    if prediction is None:
        return {**{k: 0.0 for k in ANSWER_METRICS}, "timedial_official": official_score}
    return {
        # locomo_f1 special-cases only integer categories 1/3/5 (LoCoMo's and the synthetic data's ids);
        # other benchmarks' category ids ("Level 1", None) fall through to the plain stemmed token F1.
        "locomo_f1": locomo_f1(prediction, gold, category_id),
        "amem_f1": amem_f1(prediction, gold),
        "bleu1": bleu1(prediction, gold),
        "em": exact_match(prediction, gold),
        "timedial_acc": max(0.0, timedial_accuracy(prediction, gold, task)),
        "timedial_official": official_score,
    }


def evidence_scores(selected: Iterable[str], offered: Iterable[str], gold: Iterable[str],
                    num_selected: int, num_selected_hits: int) -> dict[str, float | None]:
    """Evidence recall / precision of a selection and retrieval recall of the candidates.

    `selected` / `offered`: evidence ids (turn or session ids) covered by the selected / all candidates.
    Precision counts candidates (`num_selected_hits` of `num_selected` hold gold evidence), because a memory
    may cite several turns. Without gold evidence all three are None; without a selection precision is None.
    """
    g = set(gold)
    if not g:
        return {"evidence_recall": None, "evidence_precision": None, "retrieval_recall": None}
    return {
        "evidence_recall": len(set(selected) & g) / len(g),
        "evidence_precision": (num_selected_hits / num_selected) if num_selected else None,
        "retrieval_recall": len(set(offered) & g) / len(g),
    }


# ---- bootstrap -----------------------------------------------------------------------------------------------
# A percentile interval's ends are the (1 - level) / 2 quantiles of the resampled means: with B resamples,
# B (1 - level) / 2 of them lie beyond each end. Fewer than 5 there and an end is one or two extreme draws (B = 1
# gives an "interval" that may exclude its own estimate). So B must be 0 (no interval) or at least
# 2 * 5 / (1 - level): 200 at 95%, 1000 at 99%. Efron & Tibshirani (1993, ch. 13) advise ~1000 for percentile
# intervals, the default here.
MIN_TAIL_RESAMPLES = 5


def min_bootstrap_samples(level: float) -> int:
    """The fewest resamples for a percentile interval at `level` (MIN_TAIL_RESAMPLES beyond each end)."""
    return math.ceil(round(2 * MIN_TAIL_RESAMPLES / (1.0 - level), 6))


def _seed(*parts: Any) -> int:
    return zlib.crc32("\x1f".join(map(str, parts)).encode())


def bootstrap_ci(values: Sequence[float], samples: int = 1000, level: float = 0.95,
                 seed: int = 0) -> list[float] | None:
    """Percentile bootstrap CI of the mean, [lo, hi]; None for no values or `samples` 0 (no interval asked for);
    [x, x] for a single value. A positive `samples` below `min_bootstrap_samples(level)` is a ValueError."""
    x = np.asarray(values, dtype=float)
    if x.size == 0 or samples == 0:
        return None
    if samples < min_bootstrap_samples(level):
        raise ValueError(f"bootstrap: {samples} resamples are too few for a {level:g} percentile interval "
                         f"(0 for none, or >= {min_bootstrap_samples(level)})")
    if x.size == 1:
        m = float(x.mean())
        return [m, m]
    rng = np.random.default_rng(seed)
    means = np.empty(samples)
    chunk = max(1, 2_000_000 // x.size)  # bound memory: at most ~2M draws at a time
    for start in range(0, samples, chunk):
        stop = min(samples, start + chunk)
        idx = rng.integers(0, x.size, size=(stop - start, x.size))
        means[start:stop] = x[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return [float(lo), float(hi)]


def mean_or_none(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def summarize(values: Sequence[float], samples: int, level: float, seed: int) -> dict[str, Any]:
    return {"n": len(values), "mean": mean_or_none(values), "ci95": bootstrap_ci(values, samples, level, seed)}


def paired_difference(a: dict[str, float], b: dict[str, float], samples: int = 1000, level: float = 0.95,
                      seed: int = 0) -> dict[str, Any]:
    """Mean of b - a over the question ids both have, with a paired bootstrap CI."""
    common = sorted(set(a) & set(b))
    d = [b[k] - a[k] for k in common]
    return {"n": len(common), "diff": mean_or_none(d), "ci95": bootstrap_ci(d, samples, level, seed)}


# ---- grouping ---------------------------------------------------------------------------------------------------
def question_scores(records: Sequence[dict[str, Any]], metric: str) -> dict[str, float]:
    """question uid -> score, averaged over seeds; questions where the metric does not apply are left out.

    A uid is "<conversation id>::<question id>" (question ids repeat across copies of a conversation)."""
    acc: dict[str, list[float]] = {}
    for r in records:
        v = r["scores"].get(metric)
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            acc.setdefault(r["uid"], []).append(float(v))
    return {k: sum(v) / len(v) for k, v in acc.items()}


def history_bins(values: Sequence[int], num_bins: int) -> list[tuple[int, int]]:
    """Up to `num_bins` [lo, hi] ranges of quantiles of `values` (integers), non-overlapping, covering all."""
    if not values:
        return []
    qs = np.quantile(np.asarray(values, dtype=float), np.linspace(0, 1, max(1, num_bins) + 1))
    edges = sorted({math.floor(q) for q in qs[:-1]}) + [int(max(values)) + 1]
    return [(edges[i], edges[i + 1] - 1) for i in range(len(edges) - 1)]


def aggregate(records: Sequence[dict[str, Any]], metrics: Sequence[str], *, group_of: dict[str, str],
              group_names: dict[str, str], headline: set[str], adversarial: set[str],
              extra_groups: dict[str, dict[str, str]] | None = None, history_key: str = "evidence_distance",
              num_history_bins: int = 5, samples: int = 1000, level: float = 0.95,
              group_order: Sequence[str] | None = None) -> dict[str, Any]:
    """The `metrics` block of results.json.

    group_of: question uid -> category key; group_names: key -> name; headline: uids counted in
    `overall`; adversarial: uids left out of `overall_excl_adversarial`; extra_groups: {"level":
    {uid -> level}} gives `by_level`. Keys of `by_category` follow `group_order` (else sorted).
    """
    qinfo: dict[str, dict[str, Any]] = {}
    for r in records:
        qinfo.setdefault(r["uid"], r)
    order = list(group_order or [])
    keys = sorted(set(group_of.values()), key=_natural)
    keys = [k for k in order if k in keys] + [k for k in keys if k not in order]
    seeds = sorted({r.get("seed", 0) for r in records})
    # One set of history bins for every metric (quantiles over all questions), so tables line up.
    bins = history_bins([r[history_key] for r in qinfo.values() if r.get(history_key) is not None], num_history_bins)
    out: dict[str, Any] = {}
    for m in metrics:
        per_q = question_scores(records, m)
        block: dict[str, Any] = {}
        for name, ids in (("overall", [q for q in per_q if q in headline]),
                          ("overall_excl_adversarial", [q for q in per_q if q not in adversarial]),
                          ("overall_all", list(per_q))):
            vals = [per_q[q] for q in ids]
            s = summarize(vals, samples, level, _seed(m, name))
            block[name], block[f"{name}_ci95"], block[f"{name}_n"] = s["mean"], s["ci95"], s["n"]
        by_cat: dict[str, Any] = {}
        for k in keys:
            vals = [v for q, v in per_q.items() if group_of.get(q) == k]
            by_cat[k] = {"name": group_names.get(k, k), **summarize(vals, samples, level, _seed(m, "cat", k))}
        block["by_category"] = by_cat
        for gname, mapping in (extra_groups or {}).items():
            gkeys = sorted(set(mapping.values()), key=_natural)
            block[f"by_{gname}"] = {
                g: summarize([v for q, v in per_q.items() if mapping.get(q) == g], samples, level,
                             _seed(m, gname, g)) for g in gkeys}
        hist = [(qinfo[q].get(history_key), v) for q, v in per_q.items() if qinfo[q].get(history_key) is not None]
        block["by_history"] = [
            {"bin": [lo, hi], "n": len(vals), "mean": mean_or_none(vals)}
            for lo, hi in bins for vals in [[v for h, v in hist if lo <= h <= hi]]
        ]
        if len(seeds) > 1:
            by_seed = {}
            for s in seeds:
                vals = [float(r["scores"][m]) for r in records
                        if r.get("seed", 0) == s and r["uid"] in headline and r["scores"].get(m) is not None]
                by_seed[str(s)] = mean_or_none(vals)
            block["by_seed"] = by_seed
        out[m] = block
    return out


def op_metrics(per_conversation: Sequence[dict[str, Any]], samples: int = 1000,
               level: float = 0.95) -> dict[str, Any] | None:
    """Operation-level metrics summed over conversations (from `evaluate._manager_stats`); None without data.

    op_accuracy: share of (gold op, policy op) pairs whose types agree (pairing by world key, as the
    manager environment's op reward); confusion[gold][pred]; invalid_id_rate: UPDATE/DELETE ops rejected for
    an unknown, stale or missing id over all UPDATE/DELETE ops proposed; invalid_op_rate: every rejected op
    over all ops proposed; format_failure_rate: unparsable completions over steps; memory_size: current
    entries at the end, mean over conversations (with the gold manager's size for reference when known).
    """
    stats = [s for s in per_conversation if s]
    if not stats:
        return None

    labels = list(OP_TYPES)
    matrix = [[0] * len(labels) for _ in labels]
    agree: list[float] = []
    totals = {k: 0 for k in ("steps", "format_failures", "ops_proposed", "id_ops_proposed", "rejected",
                             "rejected_id")}
    sizes, versions, gold_sizes = [], [], []
    has_gold = False
    for s in stats:
        for g, p in s.get("op_pairs", []):
            has_gold = True
            matrix[labels.index(g)][labels.index(p)] += 1
            agree.append(float(g == p))
        for k in totals:
            totals[k] += int(s.get(k, 0))
        sizes.append(s.get("memory_size", 0))
        versions.append(s.get("memory_versions", 0))
        if s.get("gold_memory_size") is not None:
            gold_sizes.append(s["gold_memory_size"])
    ratio = lambda a, b: (a / b) if b else None
    return {
        "manager": stats[0].get("manager"),
        "conversations": len(stats),
        "has_gold_ops": has_gold,
        "op_accuracy": mean_or_none(agree),
        "op_accuracy_ci95": bootstrap_ci(agree, samples, level, _seed("ops")),
        "op_pairs": len(agree),
        "confusion": {"labels": labels, "rows": "gold", "columns": "predicted", "matrix": matrix},
        "invalid_id_rate": ratio(totals["rejected_id"], totals["id_ops_proposed"]),
        "invalid_op_rate": ratio(totals["rejected"], totals["ops_proposed"]),
        "format_failure_rate": ratio(totals["format_failures"], totals["steps"]),
        "memory_size": mean_or_none(sizes),
        "memory_versions": mean_or_none(versions),
        "gold_memory_size": mean_or_none(gold_sizes) if gold_sizes else None,
        **{k: v for k, v in totals.items()},
    }


def _natural(key: str) -> tuple:
    """Sort "2" before "10" and numbers before names."""
    try:
        return (0, float(key), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(key))
