"""Time expressions of synthetic dialogue: `past_time` / `future_time` pick an expression ("last Tuesday", "two weeks ago", "next month",
  "on 3 May") and the date it means relative to the session date; `resolve_time_expression` is the inverse
  (used by the heuristic reader in distill.py and by the tests), so rendering and resolution share one set of
  conventions, written down here once:
    * "last <weekday>" / "next <weekday>": the nearest such weekday at least two days away (never yesterday /
      tomorrow, which have their own words);
    * "N weeks ago" / "in N weeks": exactly 7N days, day granularity;
    * "last month", "N months ago", "in <Month>" (no year): month granularity; a month name without a year is
      the occurrence nearest the session date (we only render months within five of it);
    * "on 3 May" (no year): the nearest such date; "last year" / "in 2022": year granularity.
"""

from __future__ import annotations

import datetime as dt
import random
import re

from memrl.data_synth.world import (
    TimeRef,
)


def pick(rng: random.Random, seq):
    """rng.choice without its rejection loop (one C call): the hot path draws ~1000 choices per conversation."""
    return seq[int(rng.random() * len(seq))]


MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve"]
_WORD_TO_NUM = {w: i for i, w in enumerate(NUMBER_WORDS)} | {"a": 1, "an": 1, "a couple of": 2}


# ==== time =============================================================================================
def format_date(ref: TimeRef | str, granularity: str | None = None) -> str:
    """LoCoMo-style answer text: "7 May 2023", "May 2023", "2023"."""
    if isinstance(ref, TimeRef):
        iso, granularity = ref.date, ref.granularity
    else:
        iso = ref
    d = dt.date.fromisoformat(iso[:10])
    if granularity == "day":
        return f"{d.day} {MONTHS[d.month - 1]} {d.year}"
    if granularity == "month":
        return f"{MONTHS[d.month - 1]} {d.year}"
    if granularity == "year":
        return str(d.year)
    if granularity == "week_before":
        return f"the week before {d.day} {MONTHS[d.month - 1]} {d.year}"
    if granularity == "weekend_before":
        return f"the weekend before {d.day} {MONTHS[d.month - 1]} {d.year}"
    if granularity == "week_after":
        return f"the week after {d.day} {MONTHS[d.month - 1]} {d.year}"
    raise ValueError(f"unknown granularity {granularity!r}")


def date_phrase(ref: TimeRef) -> str:
    """How the canonical memory text states a time: "on 7 May 2023", "in May 2023", "in 2023"."""
    return ("on " if ref.granularity == "day" else "in ") + format_date(ref)


def period(ref: TimeRef) -> tuple[str, str]:
    """[start, end] ISO datetimes of the period a TimeRef names (a question's time_range)."""
    d = dt.date.fromisoformat(ref.date)
    if ref.granularity == "day":
        end = d
    elif ref.granularity == "month":
        end = add_months(d, 1) - dt.timedelta(days=1)
    else:
        end = dt.date(d.year, 12, 31)
    return f"{d.isoformat()}T00:00:00", f"{end.isoformat()}T23:59:59"


def add_months(d: dt.date, n: int) -> dt.date:
    m = d.month - 1 + n
    return dt.date(d.year + m // 12, m % 12 + 1, 1)


def _number(n: int, rng: random.Random | None = None) -> str:
    return NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else str(n)


def day_ref(d: dt.date, expr: str) -> TimeRef:
    return TimeRef(d.isoformat(), "day", expr)


def month_ref(d: dt.date, expr: str) -> TimeRef:
    return TimeRef(dt.date(d.year, d.month, 1).isoformat(), "month", expr)


def past_time(rng: random.Random, anchor: dt.date, relative_rate: float, granularity: str) -> TimeRef:
    """A past time expression of the given granularity and the date it resolves to from `anchor`."""
    relative = rng.random() < relative_rate
    if granularity == "day":
        if not relative:
            d = anchor - dt.timedelta(days=rng.randint(2, 60))
            with_year = rng.random() < 0.3
            return day_ref(d, f"on {d.day} {MONTHS[d.month - 1]}" + (f" {d.year}" if with_year else ""))
        r = rng.random()
        if r < 0.15:
            return day_ref(anchor - dt.timedelta(days=1), "yesterday")
        if r < 0.22:
            return day_ref(anchor - dt.timedelta(days=2), "the day before yesterday")
        if r < 0.4:
            n = rng.randint(2, 6)
            return day_ref(anchor - dt.timedelta(days=n), f"{_number(n)} days ago")
        if r < 0.7:
            k = rng.randint(2, 7)
            d = anchor - dt.timedelta(days=k)
            return day_ref(d, f"last {WEEKDAYS[d.weekday()]}")
        if r < 0.8:
            return day_ref(anchor - dt.timedelta(days=7), pick(rng, ["a week ago", "one week ago"]))
        n = rng.randint(2, 4)
        return day_ref(anchor - dt.timedelta(days=7 * n), f"{_number(n)} weeks ago")
    if granularity == "month":
        if not relative:
            d = add_months(anchor, -rng.randint(1, 5))
            return month_ref(d, f"in {MONTHS[d.month - 1]} {d.year}")
        r = rng.random()
        if r < 0.4:
            return month_ref(add_months(anchor, -1), "last month")
        if r < 0.65:
            n = rng.randint(2, 3)
            return month_ref(add_months(anchor, -n), f"{_number(n)} months ago")
        d = add_months(anchor, -rng.randint(2, 5))
        return month_ref(d, f"back in {MONTHS[d.month - 1]}")
    d = dt.date(anchor.year - 1, 1, 1)
    return TimeRef(d.isoformat(), "year", "last year" if relative else f"in {d.year}")


def future_time(rng: random.Random, anchor: dt.date, relative_rate: float, granularity: str) -> TimeRef:
    relative = rng.random() < relative_rate
    if granularity == "day":
        if not relative:
            d = anchor + dt.timedelta(days=rng.randint(10, 120))
            return day_ref(d, f"on {d.day} {MONTHS[d.month - 1]}")
        r = rng.random()
        if r < 0.15:
            return day_ref(anchor + dt.timedelta(days=1), "tomorrow")
        if r < 0.35:
            n = rng.randint(2, 6)
            return day_ref(anchor + dt.timedelta(days=n), f"in {_number(n)} days")
        if r < 0.65:
            k = rng.randint(2, 7)
            d = anchor + dt.timedelta(days=k)
            return day_ref(d, f"next {WEEKDAYS[d.weekday()]}")
        n = rng.randint(2, 4)
        return day_ref(anchor + dt.timedelta(days=7 * n), f"in {_number(n)} weeks")
    if granularity == "month":
        if not relative:
            d = add_months(anchor, rng.randint(2, 5))
            return month_ref(d, f"in {MONTHS[d.month - 1]} {d.year}")
        r = rng.random()
        if r < 0.4:
            return month_ref(add_months(anchor, 1), "next month")
        if r < 0.65:
            n = rng.randint(2, 4)
            return month_ref(add_months(anchor, n), f"in {_number(n)} months")
        d = add_months(anchor, rng.randint(2, 5))
        return month_ref(d, f"in {MONTHS[d.month - 1]}")
    d = dt.date(anchor.year + 1, 1, 1)
    return TimeRef(d.isoformat(), "year", "next year" if relative else f"in {d.year}")


_NUM = r"(a couple of|an|a|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|\d{1,2})"
_MONTH_RE = "|".join(MONTHS)
_WEEKDAY_RE = "|".join(w.lower() for w in WEEKDAYS)
_TIME_PATTERNS = [  # (compiled regex, handler name); applied to the lowercased text except month names
    (re.compile(r"\bthe day before yesterday\b"), "day_before_yesterday"),
    (re.compile(r"\b(yesterday|last night)\b"), "yesterday"),
    (re.compile(r"\b(today|this morning|earlier today|tonight)\b"), "today"),
    (re.compile(r"\btomorrow\b"), "tomorrow"),
    (re.compile(rf"\b{_NUM} (day|week|month|year)s? ago\b"), "ago"),
    (re.compile(rf"\bin {_NUM} (day|week|month|year)s?\b"), "in"),
    (re.compile(rf"\blast ({_WEEKDAY_RE})\b"), "last_weekday"),
    (re.compile(rf"\bnext ({_WEEKDAY_RE})\b"), "next_weekday"),
    (re.compile(r"\blast weekend\b"), "last_weekend"),
    (re.compile(r"\blast week\b"), "last_week"),
    (re.compile(r"\bnext week\b"), "next_week"),
    (re.compile(r"\blast month\b"), "last_month"),
    (re.compile(r"\bnext month\b"), "next_month"),
    (re.compile(r"\blast year\b"), "last_year"),
    (re.compile(r"\bnext year\b"), "next_year"),
]
_ABS_DAY = re.compile(rf"\b(\d{{1,2}}) ({_MONTH_RE})(?:,? (\d{{4}}))?\b")
_ABS_MONTH = re.compile(rf"\b(?i:in|back in|of|during|since|until|this) ({_MONTH_RE})(?:,? (\d{{4}}))?\b")
_ABS_YEAR = re.compile(r"\b(?i:in|since|of) ((?:19|20)\d\d)\b")


def resolve_time_expression(text: str, anchor: dt.date | str) -> TimeRef | None:
    """The first time expression in `text`, resolved against `anchor` (the session date); None if none.

    Handles what `past_time` / `future_time` render, plus a few forms common in LoCoMo ("last week",
    "last weekend", "last night"). A month or day without a year resolves to its occurrence nearest the anchor.
    """
    if isinstance(anchor, str):
        anchor = dt.date.fromisoformat(anchor[:10])
    low = text.lower()
    best: tuple[int, TimeRef] | None = None

    def offer(pos: int, ref: TimeRef | None):
        nonlocal best
        if ref is not None and (best is None or pos < best[0]):
            best = (pos, ref)

    for pattern, kind in _TIME_PATTERNS:
        m = pattern.search(low)
        if m is not None and (best is None or m.start() < best[0]):
            offer(m.start(), _resolve_relative(kind, m, anchor))
    for m in _ABS_DAY.finditer(text):
        day, month = int(m.group(1)), MONTHS.index(m.group(2)) + 1
        year = int(m.group(3)) if m.group(3) else None
        offer(m.start(), _nearest_day(anchor, day, month, year, m.group(0)))
        break
    m = _ABS_MONTH.search(text)
    if m is not None:
        month = MONTHS.index(m.group(1)) + 1
        year = int(m.group(2)) if m.group(2) else _nearest_month_year(anchor, month)
        offer(m.start(), TimeRef(dt.date(year, month, 1).isoformat(), "month", m.group(0)))
    m = _ABS_YEAR.search(text)
    if m is not None:
        offer(m.start(), TimeRef(f"{m.group(1)}-01-01", "year", m.group(0)))
    return best[1] if best else None


def _resolve_relative(kind: str, m: re.Match, anchor: dt.date) -> TimeRef | None:
    expr = m.group(0)
    if kind == "day_before_yesterday":
        return day_ref(anchor - dt.timedelta(days=2), expr)
    if kind == "yesterday":
        return day_ref(anchor - dt.timedelta(days=1), expr)
    if kind == "today":
        return day_ref(anchor, expr)
    if kind == "tomorrow":
        return day_ref(anchor + dt.timedelta(days=1), expr)
    if kind in ("ago", "in"):
        word, unit = m.group(1), m.group(2)
        n = int(word) if word.isdigit() else _WORD_TO_NUM[word]
        sign = -1 if kind == "ago" else 1
        if unit == "day":
            return day_ref(anchor + dt.timedelta(days=sign * n), expr)
        if unit == "week":
            return day_ref(anchor + dt.timedelta(days=sign * 7 * n), expr)
        if unit == "month":
            return month_ref(add_months(anchor, sign * n), expr)
        return TimeRef(dt.date(anchor.year + sign * n, 1, 1).isoformat(), "year", expr)
    if kind == "last_weekday":
        k = (anchor.weekday() - [w.lower() for w in WEEKDAYS].index(m.group(1))) % 7
        return day_ref(anchor - dt.timedelta(days=k + 7 if k < 2 else k), expr)
    if kind == "next_weekday":
        k = ([w.lower() for w in WEEKDAYS].index(m.group(1)) - anchor.weekday()) % 7
        return day_ref(anchor + dt.timedelta(days=k + 7 if k < 2 else k), expr)
    if kind == "last_week":
        return TimeRef(anchor.isoformat(), "week_before", expr)
    if kind == "last_weekend":
        return TimeRef(anchor.isoformat(), "weekend_before", expr)
    if kind == "next_week":
        return TimeRef(anchor.isoformat(), "week_after", expr)
    if kind == "last_month":
        return month_ref(add_months(anchor, -1), expr)
    if kind == "next_month":
        return month_ref(add_months(anchor, 1), expr)
    if kind == "last_year":
        return TimeRef(dt.date(anchor.year - 1, 1, 1).isoformat(), "year", expr)
    if kind == "next_year":
        return TimeRef(dt.date(anchor.year + 1, 1, 1).isoformat(), "year", expr)
    return None


def _nearest_month_year(anchor: dt.date, month: int) -> int:
    return min((anchor.year - 1, anchor.year, anchor.year + 1),
               key=lambda y: abs((y - anchor.year) * 12 + month - anchor.month))


def _nearest_day(anchor, day, month, year, expr) -> TimeRef | None:
    years = [year] if year else [anchor.year - 1, anchor.year, anchor.year + 1]
    cands = []
    for y in years:
        try:
            cands.append(dt.date(y, month, day))
        except ValueError:
            continue
    if not cands:
        return None
    return day_ref(min(cands, key=lambda d: abs((d - anchor).days)), expr)
