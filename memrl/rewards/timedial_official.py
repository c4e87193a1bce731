"""`timedial_official`: Memory-T1's published TIME-Dial test scoring, reproduced rule for rule (quirks included).

Source read (Elvin-Yiming-Du/Memory-T1; re-implemented here, not copied):
- answer extraction: `eval/calculate_scores_rl.py` @ 9e3f9a3 (the script that reads the released result files):
  pred = extract_option(parsed_output.get("answer", "").strip()), gold = gold_answer.strip(), then
  normalize_date() on both;
- per-task exact match: `calculate_computation_metrics`, `calculate_timeline_metrics`,
  `calculate_localization_metrics` and `calculate_metrics(extract_options(...))` of the per-task
  `calculate_scores.py` (the stored copy is `temporal_reasoning/calculate_scores (1).py` @ 4d6261b);
- the model-output parse that produced `parsed_output`: `parse_model_output` of
  `temporal_reasoning/full_prompt_eval.py` @ fee86f5 (greedy "{...}" regex, json.loads, else {}); it lives in
  `memrl.protocol.memory_t1_official` (`official_parse`, `official_answer`), re-exported here.

The published number is the mean of the per-question exact match (0/1) over all questions (overall) or over a
task's questions (per task). The rules, in the order they apply:

1. `extract_option`: a prediction that starts with a capital letter followed by ".", ")" or whitespace, or
   is a single capital letter, is cut to that letter: "B A" -> "B", "A B D" -> "A", "D There is no answer"
   -> "D", "B. Paris" -> "B". The gold is never cut, so a multi-letter gold ("B  C", Extract) cannot match.
2. `normalize_date` on prediction and gold: a string containing "T" that `datetime.fromisoformat` reads
   becomes YYYY-MM-DD; else the first of "%B %d, %Y", "%Y-%m-%d", "%m/%d/%Y", "%d/%m/%Y", "%Y/%m/%d",
   "%b %d, %Y", "%d %B %Y" that parses does; anything else is left as is.
3. by task (case-sensitive, as theirs):
   - "Computation": both sides cut into 2-token chunks; each chunk is days = sum of "<n> <unit>" (year 365,
     month 30, day, hour, minute, second; no week: "3 weeks" is 0 days); exact match only when prediction
     and gold are ONE chunk each and within 1 day ("3 months 8 days" never matches, not even itself).
   - "Timeline": first and last character dropped, surrounding parentheses dropped, split on ")(" (also
     full-width and with whitespace between); exact match = identical lists (no partial credit).
   - "Localization": dateutil `parser.parse` of both, |difference| <= 1 day; an unparsable or empty side
     is 0. dateutil fills a missing day/month/year from TODAY ("May, 2023" -> 2023-05-<today's day>), so a
     month-only gold against a full date depends on the day the script runs; `today` pins it.
   - anything else: set equality of whitespace tokens (or of ")("-split groups when the text has "(" and ")").

Where their script would crash (a non-string answer, a timezone-aware date against a naive one), this
scores 0 instead; that never happens on the released files. Checked by a differential run against a scratch
transcription of their functions (kept out of the repository): 0 differences in 20,000 random
prediction/gold/task triples built from letters, durations, dates, sequences and prose.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

# Memory-T1's model-output parse is part of the text contract (the memory_t1 answerer reads with it too).
from memrl.protocol.memory_t1_official import official_answer, official_parse

__all__ = [
    "official_answer", "official_extract", "official_gold", "official_parse", "official_score",
    "timedial_official",
]

# ---- answer extraction ---------------------------------------------------------------------------------------
_OPTION = re.compile(r"^[A-Z][.)\s]|^[A-Z]$")


def _first_letter(answer: str) -> str:
    m = _OPTION.search(answer)
    return m.group(0)[0] if m else answer


_DATE_FORMATS = ("%B %d, %Y", "%Y-%m-%d", "%m/%d/%Y", "%d/%m/%Y", "%Y/%m/%d", "%b %d, %Y", "%d %B %Y")


def _normalize_date(text: str) -> str:
    if not any(ch.isdigit() for ch in text):
        return text  # every format below needs a digit (fast path for option letters)
    if "T" in text:
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).strftime("%Y-%m-%d")  # noqa: FURB162 - as theirs
        except ValueError:
            return text  # their outer `except Exception` returns the string as it was
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).strftime("%Y-%m-%d")
        except ValueError:
            continue
    return text


def official_extract(answer: Any) -> str:
    """The prediction as their scorer compares it: strip, first option letter, date normalization."""
    return _normalize_date(_first_letter(str(answer if answer is not None else "").strip()))


def official_gold(gold: Any) -> str:
    """The gold as their scorer compares it: strip, date normalization (no letter cut)."""
    return _normalize_date(str(gold if gold is not None else "").strip())


# ---- per-task exact match ------------------------------------------------------------------------------------
_UNIT_DAYS = {"year": 365.0, "month": 30.0, "day": 1.0, "hour": 1 / 24, "minute": 1 / 1440, "second": 1 / 86400}
_EXPR = re.compile(r"(\d+)\s+(years|year|months|month|days|day|hours|hour|minutes|minute|seconds|second)")


def _days(chunk: str) -> float:
    return sum(int(n) * _UNIT_DAYS[u.rstrip("s")] for n, u in _EXPR.findall(chunk.lower()))


def _computation(pred: str, gold: str) -> float:
    p, g = pred.split(), gold.split()
    p_chunks = [" ".join(p[i : i + 2]) for i in range(0, len(p), 2)]
    g_chunks = [" ".join(g[i : i + 2]) for i in range(0, len(g), 2)]
    if len(p_chunks) != 1 or len(g_chunks) != 1:
        return 0.0
    return 1.0 if abs(_days(p_chunks[0]) - _days(g_chunks[0])) <= 1.0 else 0.0


_SEQ_SPLIT = re.compile(r"\)\s*\(|）\s*（")  # theirs also lists ")\n(", which \s already covers


def _timeline_items(s: str) -> list[str]:
    inner = s[1:-1].strip()
    if inner.startswith(("(", "（")) and inner.endswith((")", "）")):
        inner = inner[1:-1]
    return _SEQ_SPLIT.split(inner)


def _timeline(pred: str, gold: str) -> float:
    return 1.0 if _timeline_items(pred) == _timeline_items(gold) else 0.0


def _parse_date(text: str, default: datetime):
    import warnings

    from dateutil import parser

    try:
        with warnings.catch_warnings():  # "tzname B identified but not understood" for option letters
            warnings.simplefilter("ignore")
            return parser.parse(text, default=default)
    except Exception:  # noqa: BLE001 - theirs is a bare except: any failure = unparsable
        return None


def _localization(pred: str, gold: str, today: datetime | None) -> float:
    if not pred or not gold:
        return 0.0
    default = (today or datetime.now()).replace(hour=0, minute=0, second=0, microsecond=0)
    p, g = _parse_date(pred, default), _parse_date(gold, default)
    if p is None or g is None:
        return 0.0
    try:
        return 1.0 if abs(p - g) <= timedelta(days=1) else 0.0
    except TypeError:  # aware vs naive: their script raises here
        return 0.0


def _option_set(ans: str) -> set[str]:
    ans = ans.strip()
    if "(" in ans and ")" in ans:
        return set(ans.replace(")(", ") (").split())
    return set(ans.split())


def official_score(pred: str, gold: str, task: Any, today: datetime | None = None) -> float:
    """Exact match (0/1) of an already extracted prediction and gold (`official_extract` / `official_gold`)."""
    if task == "Computation":
        return _computation(pred, gold)
    if task == "Timeline":
        return _timeline(pred, gold)
    if task == "Localization":
        return _localization(pred, gold, today)
    return 1.0 if _option_set(pred) == _option_set(gold) else 0.0


def timedial_official(pred: Any, gold: Any, task: Any = None, today: datetime | None = None) -> float:
    """Memory-T1's published per-question TIME-Dial score (0/1) of an answer string (parsed_output["answer"]).

    Note the set rule scores an empty prediction against an empty gold as 1 (set() == set()), as theirs does.
    """
    return official_score(official_extract(pred), official_gold(gold), task, today)
