"""Temporal rewards: Memory-T1's read-side consistency (R_s, R_f) and our write-side term for the manager.

Read side (Memory-T1, arXiv 2512.20092; code `reward_functions/time_reasoning_acc_tc_format_acc_06_02_02_v7.py`):

    R_temporal = mean over selected sessions of (R_s + R_f) / 2              in [-0.75, 1]; 0 if none selected
    R_s  = 1                                   if the session date lies inside the question's time range
         = clip(1.5 / (1 + exp(0.5 * d / L)) - 0.5, -0.5, 1)   otherwise, d = days to the nearest range edge,
                                               L = max(range length in days, 1)          in [-0.5, 1]
    R_f  = mean over the session's events with a known time and word-overlap sim(event, question) >= 0.2
           of sim * relation(question range, event range), relation = 1 contains / 0.5 overlaps / -1 disjoint
           (0 when no event qualifies)                                                    in [-1, 1]

Two bugs of the released code are fixed here (benchmarks.md section 2.4):
1. The localization accuracy branch indexes a float (`metrics["exact_match"]` on the float returned by
   `calculate_localization_metrics`), so every localization answer scored -0.5. `accuracy.timedial_accuracy`
   returns the graded date score the code meant to return.
2. The reward reads the task type (`ability`) and the question from `extra_info`, where the repo's own
   converters never put them: the task-specific accuracy branches and the whole R_f term were dead code
   (every answer fell back to an order-insensitive token-set match; R_f was always 0). Here task, question
   and sessions are explicit arguments, so both are live.

Further documented choices (not bugs of theirs, but places where we had to decide):
- `unknown` range ends: the released code silently replaces them with 2020-01-01 / 2025-08-01, which makes
  every LoCoMo-era session "inside" an open-start range. By default we treat an unknown end as open
  (-inf / +inf); pass `unknown_defaults=MEMORY_T1_UNKNOWN_DEFAULTS` to reproduce their numbers. For a
  half-open range the decay scale L is `open_range_days` (their L would be the distance to the default).
- A selected session id listed twice counts once (otherwise duplicating a good session raises the mean).
- All times are compared at day granularity, as in their code. Dates are parsed by `parse_date_span`
  (ISO, "8 May, 2023", "May, 2023", "10:45:41 pm, January 15, 2024", ...), granularity-aware: a month-only
  date is the span of that month.

Write side (ours; DESIGN.md section 1): `write_temporal_reward` scores one manager step from plain data:
event times stored correctly (within a day tolerance) and superseded facts closed (UPDATE) rather than
duplicated (a second current entry via ADD).
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from memrl.memory.ops import normalize_op_name
from memrl.rewards.base import RewardResult

# The dates Memory-T1's reward substitutes for an `unknown` range start / end.
MEMORY_T1_UNKNOWN_DEFAULTS = ("2020-01-01", "2025-08-01")

_MONTHS = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4, "apr": 4,
    "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9,
    "sep": 9, "sept": 9, "october": 10, "oct": 10, "november": 11, "nov": 11, "december": 12, "dec": 12,
}
_ISO_DAY = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"
)
_ISO_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")
_SLASH_YMD = re.compile(r"^(\d{4})/(\d{1,2})/(\d{1,2})$")
_SLASH_MDY = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")  # US order, as Memory-T1's normalize_date tries first
_CLOCK = re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?\s*(?:[ap]\.?m\.?)?", re.IGNORECASE)
_ORDINAL = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)\b", re.IGNORECASE)
_WORD = re.compile(r"[a-z]+|\d+")
_MAX_DATE_CHARS = 200  # dates are short; longer text is searched only in its first 200 characters


def _month_end(y: int, m: int) -> date:
    return (date(y + 1, 1, 1) if m == 12 else date(y, m + 1, 1)) - timedelta(days=1)


def parse_date_span(value: Any) -> tuple[date, date] | None:
    """Parse a date-like value into the (first day, last day) it denotes, or None.

    Day-precise inputs give a one-day span; "May, 2023" / "2023-05" the month; "2023" the year. Times of day
    are ignored. "unknown", empty and unparseable values give None. Never raises.
    """
    if isinstance(value, datetime):
        return value.date(), value.date()
    if isinstance(value, date):
        return value, value
    if value is None:
        return None
    return _parse_date_text(str(value).strip()[:_MAX_DATE_CHARS])


@functools.lru_cache(maxsize=8192)  # rewards re-parse the same session / range strings every step
def _parse_date_text(s: str) -> tuple[date, date] | None:
    if not s or s.lower() == "unknown":
        return None
    try:
        for pattern, order in ((_ISO_DAY, "ymd"), (_SLASH_YMD, "ymd"), (_SLASH_MDY, "mdy")):
            m = pattern.match(s)
            if m:
                a, b, c = (int(g) for g in m.groups()[:3])
                y, mo, d = (a, b, c) if order == "ymd" else (c, a, b)
                day = date(y, mo, d)
                return day, day
        m = _ISO_MONTH.match(s)
        if m:
            y, mo = int(m.group(1)), int(m.group(2))
            return date(y, mo, 1), _month_end(y, mo)
        text = _ORDINAL.sub(r"\1", _CLOCK.sub(" ", s.lower()))
        words = _WORD.findall(text)
        month = next((_MONTHS[w] for w in words if w in _MONTHS), None)
        year = next((int(w) for w in words if len(w) == 4 and w.isdigit() and 1000 <= int(w) <= 9999), None)
        if year is None:
            return None
        if month is None:
            return date(year, 1, 1), date(year, 12, 31)
        day = next((int(w) for w in words if w.isdigit() and len(w) <= 2 and 1 <= int(w) <= 31), None)
        if day is None:
            return date(year, month, 1), _month_end(year, month)
        d0 = date(year, month, day)
        return d0, d0
    except (ValueError, OverflowError):
        return None


def span_distance_days(a: tuple[date, date], b: tuple[date, date]) -> int:
    """Days between two spans: 0 if they overlap, else the gap between the nearest ends."""
    if a[1] < b[0]:
        return (b[0] - a[1]).days
    if b[1] < a[0]:
        return (a[0] - b[1]).days
    return 0


# ---- time ranges -----------------------------------------------------------------------------------------
_RANGE_KEY = re.compile(r"""['"](start|end)['"]\s*:\s*['"]([^'"]*)['"]""")


def _range_ends(time_range: Any) -> tuple[Any, Any]:
    """(start, end) raw values from [start, end], {"start", "end"}, or Memory-T1's str()-stored dict."""
    if time_range is None:
        return None, None
    if isinstance(time_range, Mapping):
        return time_range.get("start"), time_range.get("end")
    if isinstance(time_range, (list, tuple)):
        items = list(time_range) + [None, None]
        return items[0], items[1]
    if isinstance(time_range, str):
        s = time_range.strip()
        try:
            parsed = json.loads(s)
            if isinstance(parsed, (Mapping, list)):
                return _range_ends(parsed)
        except (ValueError, RecursionError):
            pass
        found = dict(_RANGE_KEY.findall(s))
        return found.get("start"), found.get("end")
    return None, None


def resolve_range(
    time_range: Any, unknown_defaults: Sequence[str] | None = None
) -> tuple[date | None, date | None]:
    """Question time range as (start date or None = open, end date or None = open).

    The start is the first day of its span and the end the last day ("May, 2023" ends on May 31). Unknown or
    unparseable ends are open unless `unknown_defaults` = (start default, end default) is given.
    """
    raw_start, raw_end = _range_ends(time_range)
    s, e = parse_date_span(raw_start), parse_date_span(raw_end)
    start = s[0] if s else None
    end = e[1] if e else None
    if unknown_defaults is not None:
        if start is None:
            start = parse_date_span(unknown_defaults[0])[0]  # type: ignore[index]
        if end is None:
            end = parse_date_span(unknown_defaults[1])[1]  # type: ignore[index]
    return start, end


# ---- R_s: session-level chronological proximity -----------------------------------------------------------
def session_proximity(
    session_time: Any,
    time_range: Any,
    *,
    unknown_defaults: Sequence[str] | None = None,
    open_range_days: float = 30.0,
) -> float:
    """Memory-T1's R_s for one session, in [-0.5, 1].

    1.0 inside the range; outside, `1.5 / (1 + exp(0.5 * d / L)) - 0.5` clipped to [-0.5, 1] (0.25 right at
    the edge, -0.5 far away). A session without a parseable time scores 0 (no signal) unless
    `unknown_defaults` is given, in which case it takes the default start date as their code does.
    """
    span = parse_date_span(session_time)
    if span is None:
        if unknown_defaults is None:
            return 0.0
        span = parse_date_span(unknown_defaults[0])
        if span is None:
            return 0.0
    t = span[0]
    start, end = resolve_range(time_range, unknown_defaults)
    if start is not None and t < start:
        distance = (start - t).days
    elif end is not None and t > end:
        distance = (t - end).days
    else:
        return 1.0
    length = (end - start).days if (start is not None and end is not None) else open_range_days
    x = distance / max(length, 1)
    if 0.5 * x > 700:  # exp overflow; the limit of the sigmoid is -0.5
        return -0.5
    return max(min(1.5 / (1.0 + math.exp(0.5 * x)) - 0.5, 1.0), -0.5)


# ---- R_f: utterance-level chronological fidelity ("event density") ----------------------------------------
_STOP_WORDS = frozenset(
    {"a", "an", "the", "and", "or", "but", "in", "on", "at", "to", "for", "of", "with", "by", "is", "are",
     "was", "were", "be", "been"}
)
_TOKEN = re.compile(r"\w+")


def text_match_score(short_text: Any, long_text: Any) -> float:
    """Memory-T1's `simple_text_match`: how much of an event summary the question covers, in [0, 1].

    Overlap of content words (stop words and words of <= 2 letters dropped) as a fraction of the summary's
    words, plus a continuity bonus (<= 0.3) for consecutive matches in the question and a position bonus
    (<= 0.2) for matches early in the question, capped at 1.
    """
    if not short_text or not long_text:
        return 0.0
    short_words = [w for w in _TOKEN.findall(str(short_text).lower()) if w not in _STOP_WORDS and len(w) > 2]
    long_words = [w for w in _TOKEN.findall(str(long_text).lower()) if w not in _STOP_WORDS and len(w) > 2]
    if not short_words:
        return 0.0
    short_set = set(short_words)
    overlap = len(short_set & set(long_words)) / len(short_set)
    position_score = 0.0
    if overlap > 0:
        positions = [i for i, w in enumerate(long_words) if w in short_set]
        continuity_bonus = 0.0
        if len(positions) > 1:
            best = run = 1
            for prev, cur in itertools.pairwise(positions):
                run = run + 1 if cur == prev + 1 else 1
                best = max(best, run)
            continuity_bonus = min(0.3, best / len(short_words) * 0.3)
        avg_position = sum(positions) / len(positions) / len(long_words)
        position_score = continuity_bonus + (1 - avg_position) * 0.2
    return min(1.0, overlap + position_score)


def interval_relation(outer: tuple[date | None, date | None], inner: tuple[date | None, date | None]) -> float:
    """Memory-T1's `check_time_range_relation`: 1 if `outer` contains `inner`, -1 if disjoint, else 0.5.

    None is an open end (-inf for a start, +inf for an end). An inverted finite interval scores -1, as theirs.
    """
    st, et = outer
    est, eet = inner
    if (st is not None and et is not None and st > et) or (est is not None and eet is not None and est > eet):
        return -1.0
    starts_before = st is None or (est is not None and st <= est)
    ends_after = et is None or (eet is not None and et >= eet)
    if starts_before and ends_after:
        return 1.0
    if (et is not None and est is not None and et < est) or (st is not None and eet is not None and st > eet):
        return -1.0
    return 0.5


def _get(obj: Any, *names: str, default: Any = None) -> Any:
    """First present field of a dict or attribute of an object."""
    for n in names:
        if isinstance(obj, Mapping):
            if n in obj and obj[n] is not None:
                return obj[n]
        elif getattr(obj, n, None) is not None:
            return getattr(obj, n)
    return default


def _event_range(event_time: Any, unknown_defaults: Sequence[str] | None):
    """(start, end) of an event time, or None when both ends are unknown (Memory-T1 skips those events)."""
    if isinstance(event_time, (list, tuple)):
        raw_s, raw_e = (list(event_time) + [None, None])[:2]
    else:
        raw_s = raw_e = event_time
    s, e = parse_date_span(raw_s), parse_date_span(raw_e)
    if s is None and e is None:
        return None
    start, end = (s[0] if s else None), (e[1] if e else None)
    if unknown_defaults is not None:
        start = start if start is not None else parse_date_span(unknown_defaults[0])[0]  # type: ignore[index]
        end = end if end is not None else parse_date_span(unknown_defaults[1])[1]  # type: ignore[index]
    return start, end


def event_fidelity(
    events: Iterable[Any],
    question: str,
    time_range: Any,
    *,
    min_similarity: float = 0.2,
    unknown_defaults: Sequence[str] | None = None,
) -> float:
    """Memory-T1's R_f over one session's events, in [-1, 1] (0 when no event qualifies).

    Each event is a dict/object with `event_summary` (or `summary`/`text`) and `event_time` ([start, end] or
    one date). Events with both ends unknown, or with `text_match_score(summary, question) < min_similarity`,
    are skipped; the rest contribute `sim * interval_relation(question range, event range)`.
    """
    q_range = resolve_range(time_range, unknown_defaults)
    total, count = 0.0, 0
    for ev in events or ():
        ev_range = _event_range(_get(ev, "event_time", "time"), unknown_defaults)
        if ev_range is None:
            continue
        sim = text_match_score(_get(ev, "event_summary", "summary", "text", default=""), question)
        if sim < min_similarity:
            continue
        total += sim * interval_relation(q_range, ev_range)
        count += 1
    return total / count if count else 0.0


def _session_events(session: Any) -> list[Any]:
    """Events of a session in Memory-T1's layout (utterances[].events) or ours (turns[].meta["events"])."""
    out: list[Any] = []
    utterances = _get(session, "utterances", "turns", "content", default=[]) or []
    if not isinstance(utterances, (list, tuple)):
        return out
    for utt in utterances:
        evs = _get(utt, "events")
        if evs is None:
            meta = _get(utt, "meta")
            evs = meta.get("events") if isinstance(meta, Mapping) else None
        if isinstance(evs, (list, tuple)):
            out.extend(e for e in evs if isinstance(e, Mapping) or hasattr(e, "event_time"))
    return out


def _session_index(sessions: Any) -> dict[str, Any]:
    if sessions is None:
        return {}
    if isinstance(sessions, Mapping):
        # Either {session_id: session} or {session_id: time string}.
        return {str(k): v for k, v in sessions.items()}
    out = {}
    for s in sessions:
        sid = _get(s, "session_id", "id")
        if sid is not None:
            out[str(sid)] = s
    return out


def temporal_consistency(
    selected_ids: Sequence[str],
    sessions: Any,
    question: str,
    time_range: Any,
    *,
    unknown_defaults: Sequence[str] | None = None,
    open_range_days: float = 30.0,
    min_similarity: float = 0.2,
) -> RewardResult:
    """Memory-T1's R_temporal: mean over selected sessions of (R_s + R_f) / 2, in [-0.75, 1].

    `sessions`: a list of session dicts/objects (`session_id`, `session_time` or `timestamp`, utterances or
    turns carrying events), or a mapping id -> session, or id -> time string (then R_f is 0). A selected id
    that is not a known session contributes 0, as in their code. No selection gives 0.
    """
    index = _session_index(sessions)
    ids = list(dict.fromkeys(str(s) for s in selected_ids))
    if not ids:
        return RewardResult(0.0, {"session_proximity": 0.0, "event_fidelity": 0.0, "num_selected": 0.0})
    r_s_sum = r_f_sum = 0.0
    for sid in ids:
        session = index.get(sid)
        if session is None:
            continue
        if isinstance(session, (str, date)):
            time, events = session, []
        else:
            time, events = _get(session, "session_time", "timestamp", "session_date", "time"), _session_events(session)
        r_s_sum += session_proximity(
            time, time_range, unknown_defaults=unknown_defaults, open_range_days=open_range_days
        )
        r_f_sum += event_fidelity(
            events, question, time_range, min_similarity=min_similarity, unknown_defaults=unknown_defaults
        )
    n = len(ids)
    value = (r_s_sum + r_f_sum) / 2 / n
    return RewardResult(
        value, {"session_proximity": r_s_sum / n, "event_fidelity": r_f_sum / n, "num_selected": float(n)}
    )


# ---- write side: the manager stores event times and closes superseded facts -------------------------------
def _norm_text(text: Any) -> str:
    return " ".join(_TOKEN.findall(str(text or "").lower()))


def _text_f1(a: Any, b: Any) -> float:
    ta, tb = set(_TOKEN.findall(str(a or "").lower())), set(_TOKEN.findall(str(b or "").lower()))
    same = len(ta & tb)
    if not same:
        return 0.0
    p, r = same / len(ta), same / len(tb)
    return 2 * p * r / (p + r)


def _op_name(x: Any) -> str:

    return normalize_op_name(_get(x, "op", "event", default="")) or ""


def write_temporal_reward(
    written: Sequence[Any],
    gold: Sequence[Any],
    current: Sequence[Any] = (),
    *,
    tolerance_days: float = 1.0,
    match_threshold: float = 0.5,
) -> RewardResult:
    """Write-side temporal term for one manager step, in [-1, 1] (0 when nothing is scorable).

    written: the ops the bank applied this step (`memrl.memory.ops.Op` or dicts with op/text/event_time and,
             optionally, `entry` = the world key of the fact).
    gold:    the step's gold ops (`memrl.data.schema.GoldOp` or dicts: op, entry, text, event_time).
    current: entries current before the step (dicts/objects with text and optionally `entry`/`key`).

    Scored items, averaged:
    - each gold ADD/UPDATE with an event_time: 1 if the matching written ADD/UPDATE stores an event_time
      within `tolerance_days` of it, else 0 (wrong, missing, or no matching op);
    - each gold UPDATE (a fact superseded): +1 if matched by a written UPDATE (the old version is closed),
      -1 if matched by an ADD (the old fact stays current beside the new one), 0 if unmatched;
    - each written ADD whose text equals a current entry's (or that names a current entry's key): -1.
    A written op matches a gold op by equal `entry` when both carry one, else by token-set F1 of the texts
    >= `match_threshold`; each written op matches at most one gold op.
    """
    writes = [w for w in written if _op_name(w) in ("ADD", "UPDATE")]
    used: set[int] = set()

    def match(g: Any) -> int | None:
        g_entry, best, best_i = _get(g, "entry"), 0.0, None
        for i, w in enumerate(writes):
            if i in used:
                continue
            w_entry = _get(w, "entry", "key")
            if g_entry is not None and w_entry is not None:
                score = 1.0 if str(g_entry) == str(w_entry) else 0.0
            else:
                score = _text_f1(_get(g, "text"), _get(w, "text"))
            if score >= match_threshold and score > best:
                best, best_i = score, i
        if best_i is not None:
            used.add(best_i)
        return best_i

    time_items: list[float] = []
    supersede_items: list[float] = []
    for g in gold:
        g_op = _op_name(g)
        if g_op not in ("ADD", "UPDATE"):
            continue
        i = match(g)
        w = writes[i] if i is not None else None
        g_span = parse_date_span(_get(g, "event_time"))
        if g_span is not None:
            w_span = parse_date_span(_get(w, "event_time")) if w is not None else None
            ok = w_span is not None and span_distance_days(g_span, w_span) <= tolerance_days
            time_items.append(1.0 if ok else 0.0)
        if g_op == "UPDATE":
            supersede_items.append(0.0 if w is None else (1.0 if _op_name(w) == "UPDATE" else -1.0))

    current_texts = {_norm_text(_get(c, "text")) for c in current} - {""}
    current_keys = {str(k) for k in (_get(c, "entry", "key") for c in current) if k is not None}
    duplicate_items = [
        -1.0
        for w in writes
        if _op_name(w) == "ADD"
        and (_norm_text(_get(w, "text")) in current_texts or str(_get(w, "entry", "key", default="\0")) in current_keys)
    ]

    items = time_items + supersede_items + duplicate_items
    breakdown = {
        "num_items": float(len(items)),
        "duplicate_adds": float(len(duplicate_items)),
    }
    if time_items:
        breakdown["event_time_acc"] = sum(time_items) / len(time_items)
    if supersede_items:
        breakdown["supersession"] = sum(supersede_items) / len(supersede_items)
    return RewardResult(sum(items) / len(items) if items else 0.0, breakdown)
