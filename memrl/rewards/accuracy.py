"""Answer accuracy: exact match, LoCoMo's official stemmed F1, the A-Mem/Mem0 F1 and BLEU-1, TIME-Dial task
accuracy (Memory-T1's R_acc) and a hook for an LLM judge. All scores are floats; ranges are in each docstring.

Which F1 is which (they are not comparable; see the two scorers cited below):
- `locomo_f1` / `token_f1`: snap-research/LoCoMo `task_eval/evaluation.py`. Normalization removes commas,
  lowercases, strips punctuation, drops a/an/the/and; tokens are Porter-stemmed; multiset F1. Per category:
  1 (multi-hop) comma-split partial F1, 3 (open-domain) gold cut at the first ';', 5 (adversarial) 1 if the
  prediction says "not mentioned" / "no information available".
- `amem_f1`: A-Mem `utils.py` as adopted by Mem0 and Memory-R1. `simple_tokenize` (lowercase, . , ! ? ->
  space, split), token *set* F1, no stemming, no article removal.
- `bleu1`: the same harness's BLEU-1 (nltk `sentence_bleu`, weights (1,0,0,0), smoothing method1). The
  harness tokenizes with `nltk.word_tokenize`, which needs the punkt sentence model; no nltk data is
  installable here, so we split sentences with a regex on [.!?] + whitespace and run nltk's
  `NLTKWordTokenizer` (the word tokenizer `word_tokenize` itself uses) on each sentence. The results differ
  from punkt only where punkt would not split after a period (abbreviations such as "Dr. Smith" or
  "Jan. 5"); short answers are almost always a single sentence, where the two agree exactly.

nltk is imported on first use (its package import pulls in scipy and sklearn, seconds of start-up).
"""

from __future__ import annotations

import functools
import math
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from memrl.rewards.temporal import parse_date_span, span_distance_days
from memrl.rewards.timedial_official import timedial_official

# ---- LoCoMo official F1 -----------------------------------------------------------------------------------
_PUNCT = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the|and)\b")
ABSTENTION_MARKERS = ("no information available", "not mentioned")


def normalize_answer(s: Any) -> str:
    """LoCoMo's `normalize_answer`: drop commas, lowercase, strip punctuation, drop a/an/the/and, squeeze spaces."""
    s = str(s).replace(",", "").lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


@functools.lru_cache(maxsize=1)
def _stemmer():
    from nltk.stem import PorterStemmer  # lazy: see module docstring

    return PorterStemmer()


@functools.lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return _stemmer().stem(word)


def token_f1(pred: Any, gold: Any) -> float:
    """LoCoMo's `f1_score`: multiset F1 of Porter-stemmed normalized tokens, in [0, 1]."""
    p = [_stem(w) for w in normalize_answer(pred).split()]
    g = [_stem(w) for w in normalize_answer(gold).split()]
    same = sum((Counter(p) & Counter(g)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def _category(category_id: Any) -> int | None:
    try:
        return int(str(category_id).strip())
    except (TypeError, ValueError):
        return None


def locomo_f1(pred: Any, gold: Any, category_id: Any = None) -> float:
    """LoCoMo's official per-question score (`eval_question_answering`), in [0, 1].

    category 1: gold and prediction split on ','; mean over gold parts of the best F1 over predicted parts.
    category 3: gold truncated at the first ';' (the prediction is not), then `token_f1`.
    category 5: 1.0 if the prediction contains "no information available" or "not mentioned", else 0.0.
    categories 2, 4 and anything else (including None): `token_f1`.
    """
    pred = str(pred) if pred is not None else ""
    gold = str(gold) if gold is not None else ""
    cat = _category(category_id)
    if cat == 5:
        low = pred.lower()
        return float(any(m in low for m in ABSTENTION_MARKERS))
    if cat == 3:
        gold = gold.split(";")[0].strip()
    if cat == 1:
        preds = [x.strip() for x in pred.split(",")]
        golds = [x.strip() for x in gold.split(",")]
        return sum(max(token_f1(p, g) for p in preds) for g in golds) / len(golds)
    return token_f1(pred, gold)


def exact_match(pred: Any, gold: Any) -> float:
    """1.0 if the LoCoMo-normalized strings are equal (Memory-R1's EM outcome reward), else 0.0.

    An empty normalized gold never matches (a blank answer must not earn reward on a blank label).
    """
    g = normalize_answer(gold if gold is not None else "")
    return float(bool(g) and normalize_answer(pred if pred is not None else "") == g)


# ---- A-Mem / Mem0 community metrics -----------------------------------------------------------------------
def simple_tokenize(text: Any) -> list[str]:
    """A-Mem's `simple_tokenize`: lowercase, replace . , ! ? with spaces, split on whitespace."""
    return str(text).lower().replace(".", " ").replace(",", " ").replace("!", " ").replace("?", " ").split()


def amem_f1(pred: Any, gold: Any) -> float:
    """A-Mem/Mem0 token F1 (sets of `simple_tokenize` tokens), in [0, 1]; 0 if either side is empty."""
    if not pred or not gold:
        return 0.0
    p, g = set(simple_tokenize(str(pred).strip())), set(simple_tokenize(str(gold).strip()))
    if not p or not g:
        return 0.0
    same = len(p & g)
    if not same:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@functools.lru_cache(maxsize=1)
def _bleu_tools():
    from nltk.tokenize import NLTKWordTokenizer
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    return NLTKWordTokenizer(), sentence_bleu, SmoothingFunction().method1


def _word_tokenize(text: str) -> list[str]:
    tokenizer = _bleu_tools()[0]
    return [tok for sent in _SENTENCE_END.split(text) if sent for tok in tokenizer.tokenize(sent)]


def bleu1(pred: Any, gold: Any) -> float:
    """A-Mem/Mem0 BLEU-1 of the lowercased prediction against the gold, in [0, 1]; 0 if either is empty.

    Tokenization: regex sentence split + `NLTKWordTokenizer` (see the module docstring for the difference
    from `nltk.word_tokenize`).
    """
    if not pred or not gold:
        return 0.0
    p = _word_tokenize(str(pred).strip().lower())
    g = _word_tokenize(str(gold).strip().lower())
    if not p or not g:
        return 0.0
    _, sentence_bleu, smooth = _bleu_tools()
    return float(sentence_bleu([g], p, weights=(1, 0, 0, 0), smoothing_function=smooth))


# ---- TIME-Dial task accuracy (Memory-T1's R_acc) ----------------------------------------------------------
_DURATION_UNITS = {
    "year": 365.0, "years": 365.0, "month": 30.0, "months": 30.0, "week": 7.0, "weeks": 7.0,
    "day": 1.0, "days": 1.0, "hour": 1 / 24, "hours": 1 / 24, "minute": 1 / 1440, "minutes": 1 / 1440,
    "second": 1 / 86400, "seconds": 1 / 86400,
}
_DURATION = re.compile(r"(?<!\d)(\d{1,9})\s+(" + "|".join(sorted(_DURATION_UNITS, key=len, reverse=True)) + r")\b")


def duration_days(text: Any) -> float:
    """Sum of "<n> <unit>" expressions in days (year = 365, month = 30, as Memory-T1)."""
    return sum(int(n) * _DURATION_UNITS[u] for n, u in _DURATION.findall(str(text).lower()))


def _duration_exact(pred: str, gold: str) -> float:
    """Memory-T1's `calculate_computation_metrics` exact match: the answers are cut into 2-token chunks
    ("3 months", "8 days", ...); each predicted chunk matches an unused gold chunk within 1 day; EM = every
    chunk matched both ways."""
    def chunks(s: str) -> list[str]:
        toks = s.split()
        return [" ".join(toks[i : i + 2]) for i in range(0, len(toks), 2)]

    p_chunks, g_chunks = chunks(pred), chunks(gold)
    used: set[int] = set()
    tp = 0
    for pc in p_chunks:
        pd = duration_days(pc)
        for gi, gc in enumerate(g_chunks):
            if gi not in used and abs(pd - duration_days(gc)) <= 1.0:
                used.add(gi)
                tp += 1
                break
    return 1.0 if tp == len(g_chunks) == len(p_chunks) else 0.0


def _sequence(s: str) -> list[str] | None:
    s = s.strip()
    if not (s.startswith("(") and s.endswith(")")):
        return None
    return s[1:-1].split(")(")


def _timeline_score(pred: str, gold: str) -> float:
    """Position-wise matches of "(1)(4)(3)(2)" sequences, in [-0.5, 1].

    Memory-T1 divides by the predicted length, so a truncated prediction such as "(1)" scores 1 whenever the
    gold starts with (1); we divide by max(len(pred), len(gold)), equal to theirs when the lengths agree. A
    prediction that is not a parenthesized sequence scores -0.5 (their code raises there and returns -0.5).
    """
    p, g = _sequence(pred), _sequence(gold)
    if p is None:
        return -0.5
    if g is None:
        return 0.0
    return sum(a == b for a, b in zip(p, g)) / max(len(p), len(g))


def graded_date_score(pred: Any, gold: Any) -> float:
    """Memory-T1's graded localization score, in [0, 1] (the one its v7 code meant to return).

    1 for the same day (or a day inside a month-only gold), max(0.5, 1 - 0.1 d) within a week,
    max(0.1, 0.5 - 0.02 (d - 7)) within 30 days, else 0; d = days between the date spans. Unparseable
    dates fall back to equality of the whitespace-collapsed, lowercased strings.
    """
    p, g = parse_date_span(pred), parse_date_span(gold)
    if p is None or g is None:
        norm = lambda x: " ".join(str(x or "").lower().split())
        return 1.0 if norm(pred) and norm(pred) == norm(gold) else 0.0
    d = span_distance_days(p, g)
    if d == 0:
        return 1.0
    if d <= 7:
        return max(0.5, 1.0 - d * 0.1)
    if d <= 30:
        return max(0.1, 0.5 - (d - 7) * 0.02)
    return 0.0


def _options(ans: str) -> set[str]:
    """Memory-T1's `extract_options`: "A C" -> {A, C}; "(1)(2)" -> {(1), (2)}."""
    ans = ans.strip()
    if "(" in ans and ")" in ans:
        return set(ans.replace(")(", ") (").split())
    return set(ans.split())


def timedial_accuracy(pred: Any, gold: Any, task: Any = None) -> float:
    """Memory-T1's task-specific R_acc for TIME-Dial answers, in [-0.5, 1].

    task (case-insensitive) "computation": duration chunks within 1 day, exact match 1/0;
    "timeline": position-wise sequence score (see `_timeline_score`); "localization": graded date score
    (their v7 bug, which returned -0.5 for every localization answer, is fixed); anything else: exact
    equality of option-letter sets ("B  C" == "C B").
    """
    p = str(pred).strip() if pred is not None else ""
    g = str(gold).strip() if gold is not None else ""
    kind = str(task or "").strip().lower()
    if kind == "computation":
        return _duration_exact(p, g)
    if kind == "timeline":
        return _timeline_score(p, g)
    if kind == "localization":
        return graded_date_score(p, g)
    return float(bool(g) and _options(p) == _options(g))


def _timedial_official(pred: Any, gold: Any, task: Any) -> float:
    return timedial_official(pred, gold, task)  # Memory-T1's published scoring, quirks kept


# ---- dispatcher -------------------------------------------------------------------------------------------
METRICS: dict[str, Callable[..., float]] = {
    "em": lambda p, g, c, t: exact_match(p, g),
    "token_f1": lambda p, g, c, t: token_f1(p, g),
    "locomo_f1": lambda p, g, c, t: locomo_f1(p, g, c),
    "amem_f1": lambda p, g, c, t: amem_f1(p, g),
    "bleu1": lambda p, g, c, t: bleu1(p, g),
    "timedial": lambda p, g, c, t: timedial_accuracy(p, g, t),
    "timedial_official": lambda p, g, c, t: _timedial_official(p, g, t),
}
METRICS["f1"] = METRICS["token_f1"]
METRICS["exact_match"] = METRICS["em"]


def accuracy(pred: Any, gold: Any, metric: str = "locomo_f1", *, category_id: Any = None, task: Any = None) -> float:
    """Score `pred` against `gold` with a named metric (keys of `METRICS`).

    A missing prediction (None) scores 0 on every metric. Ranges: [0, 1], except "timedial" [-0.5, 1].
    """
    try:
        fn = METRICS[metric]
    except KeyError:
        raise ValueError(f"unknown accuracy metric {metric!r}; choose one of {sorted(METRICS)}") from None
    if pred is None:
        return 0.0
    return fn(pred, gold, category_id, task)


# ---- LLM judge hook ---------------------------------------------------------------------------------------
class Judge(Protocol):
    """What `judge_scores` needs: memrl.policies.judge implements it over a generation backend."""

    def judge(self, questions: Sequence[str], golds: Sequence[str], answers: Sequence[str]) -> list[float | None]: ...


def judge_scores(
    questions: Sequence[str], golds: Sequence[str], preds: Sequence[str | None], judge: Judge | None = None
) -> list[float | None]:
    """Mem0's CORRECT/WRONG judge scores (1.0 / 0.0, None where the judge gave no verdict), batched.

    Off by default: without a judge every entry is None (TRL reads None as "no reward from this term").
    """
    n = len(questions)
    if not (len(golds) == len(preds) == n):
        raise ValueError(f"judge_scores: {n} questions, {len(golds)} golds, {len(preds)} predictions")
    if judge is None:
        return [None] * n
    scores = judge.judge(list(questions), list(golds), ["" if p is None else str(p) for p in preds])
    if len(scores) != n:
        raise ValueError(f"judge returned {len(scores)} scores for {n} questions")
    out: list[float | None] = []
    for s in scores:
        out.append(None if s is None or (isinstance(s, float) and math.isnan(s)) else float(s))
    return out
