"""Questions with gold answers, evidence, question time and time range, derived from the rendered records.

Every question comes from the records of what became true (render.Record), never from the text, so its
answer is right by construction; the tests then check it against a memory bank replayed from the gold ops.

Categories and their ids. The ids of the LoCoMo categories we share are LoCoMo's own, so that
`memrl.rewards.accuracy.locomo_f1(pred, gold, category_id)` scores them the LoCoMo way (comma-split F1 for
multi-hop lists, the abstention check for adversarial); the others are new and scored with plain F1.

    id  name                 what it asks                                           example answer
     1  multi_hop            a list over several turns/sessions, or a value that    "Rex, Luna"
                             needs two facts (the city at the time of an event)
     2  temporal             when / how long / how many days between / before-after "6 May 2023", "two weeks"
                             / which came first
     4  single_hop           one stated value or detail                             "Porto", "beagle"
     5  adversarial          an attribute or person never mentioned                 ABSTAIN_ANSWER
     6  knowledge_update     the value now (after changes), or whether it still     "Lisbon", "No"
                             holds after it ended
     7  history              the value before a change, or what ended               "Porto"
     8  conflict_resolution  a value stated and then corrected: the later wins      "Rex"

(LoCoMo's 3, open-domain, needs world knowledge and is not synthesized.)

Question time. A question is asked after some session j, at 23:59 of that session's day (sessions are
whole days apart, so this precedes the next session). Each candidate knows the window of sessions in which its
answer holds: from the session of its last evidence turn until the first later record that would change the
answer. By default j is the last session; with probability `mid_conversation_question_rate`, and always
when the answer stops holding before the end, j is drawn inside the window. What is "current" is defined by
the question time. Windows before a correction are never used: there the dialogue still says the value that
the speaker later calls a mistake.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import re
from dataclasses import dataclass, field

from memrl.data.schema import ABSTAIN_ANSWER, Question, Session
from memrl.data_synth.config import CATEGORIES, CATEGORY_IDS
from memrl.data_synth.render import Record, with_article
from memrl.data_synth.time_expressions import format_date, period
from memrl.data_synth.world import (
    EVENTS,
    LANGUAGES,
    OTHER_NAMES,
    PET_SPECIES,
    PLANS,
    RELATIONS,
    VALUE_POOLS,
    Story,
)

MAX_PAIRS = 30  # event pairs considered for order / before-after / days-between questions per conversation
_EVENTS = {e.slug: e for e in EVENTS}
_PLANS = {p.slug: p for p in PLANS}

VALUE_Q = {
    "city": ["Where does {P} live?", "Which city does {P} live in?", "What city is {P} based in?"],
    "job": ["What does {P} do for a living?", "What is {P}'s job?", "What does {P} work as?"],
    "pet": ["What is the name of {P}'s {sub}?", "What is {P}'s {sub} called?"],
    "food": ["What is {P}'s favorite food?", "Which dish does {P} like best?"],
    "music": ["What is {P}'s favorite kind of music?", "What music does {P} like most?"],
    "relation": ["What is the name of {P}'s {rel}?", "What is {P}'s {rel} called?"],
    "language": ["Which language is {P} learning?", "What language is {P} studying?"],
    "diet": ["What diet does {P} follow?", "What kind of diet does {P} have?"],
    "vehicle": ["What does {P} drive?", "What vehicle does {P} have?"],
    "instrument": ["Which instrument does {P} play?", "What instrument does {P} play?"],
}
DETAIL_Q = {
    "city": ["Which part of {v} does {P} live in?", "Where in {v} does {P} live?"],
    "job": ["Where does {P} work?", "What kind of place does {P} work at?"],
    "pet": ["What breed is {P}'s {sub}?", "What breed is {v}, {P}'s {sub}?"],
    "language": ["How is {P} learning {v}?", "How does {P} study {v}?"],
}
STILL_Q = {
    "city": "Does {P} still live in {v}?", "job": "Is {P} still working as {av}?",
    "pet": "Does {P} still have the {sub} named {v}?", "hobby": "Is {P} still into {v}?",
    "food": "Is {v} still {P}'s favorite food?", "music": "Is {v} still {P}'s favorite music?",
    "partner": "Is {P} still with {v}?", "language": "Is {P} still learning {v}?", "diet": "Is {P} still {v}?",
    "vehicle": "Does {P} still drive the {v}?", "instrument": "Does {P} still play the {v}?",
    "plan": "Is {P} still planning to {v}?",
}
BEFORE_CHANGE_Q = {
    "city": ["Where did {P} live before moving to {new}?", "Which city did {P} live in before {new}?"],
    "job": ["What did {P} work as before becoming {anew}?", "What was {P}'s job before becoming {anew}?"],
    "food": ["What was {P}'s favorite food before {new}?"],
    "music": ["What music did {P} like most before {new}?"],
    "language": ["Which language was {P} learning before switching to {new}?"],
    "diet": ["What diet did {P} follow before going {new}?"],
    "vehicle": ["What did {P} drive before the {new}?"],
    "instrument": ["Which instrument did {P} play before the {new}?"],
    "plan": ["When was {P} originally planning to {v}?"],
}
ENDED_Q = {
    "job": "What was {P}'s job before quitting?", "pet": "What was the name of the {sub} {P} used to have?",
    "hobby": "Which hobby did {P} give up?", "partner": "What was the name of {P}'s former partner?",
    "language": "Which language did {P} stop learning?", "diet": "What diet did {P} give up?",
    "vehicle": "What did {P} drive before selling it?", "instrument": "Which instrument did {P} stop playing?",
    "plan": "Which plan did {P} cancel?",
}
LIST_Q = {"pet": ["What are the names of {P}'s pets?", "What are {P}'s pets called?"],
          "hobby": ["What hobbies does {P} have?", "Which hobbies is {P} into?"]}
PAIR_Q = {
    "city": "Where do {A} and {B} live?", "job": "What do {A} and {B} do for a living?",
    "food": "What are {A}'s and {B}'s favorite foods?", "music": "What kinds of music do {A} and {B} like best?",
    "language": "Which languages are {A} and {B} learning?", "diet": "What diets do {A} and {B} follow?",
    "vehicle": "What do {A} and {B} drive?", "instrument": "Which instruments do {A} and {B} play?",
}
# Never rendered by any template: asking about them is unanswerable by construction (still checked).
ADVERSARIAL_ATTRS = [
    ("What is {P}'s favorite color?", ["color", "colour"]), ("What is {P}'s blood type?", ["blood"]),
    ("What shoe size does {P} wear?", ["shoe"]), ("When is {P}'s birthday?", ["birthday"]),
    ("What is {P}'s middle name?", ["middle name"]), ("Which high school did {P} attend?", ["high school"]),
    ("What is {P}'s favorite movie?", ["movie", "film"]), ("What is {P} allergic to?", ["allergic", "allergy"]),
    ("Where did {P} grow up?", ["grew up", "grow up", "childhood"]), ("What phone does {P} use?", ["phone"]),
    ("Which sports team does {P} support?", ["team"]), ("What is {P}'s favorite season?", ["season"]),
]
# Catalog attributes that may be absent from a conversation: unanswerable only if none of the words occur.
ADVERSARIAL_CATALOG = {
    "pet": (["What is the name of {P}'s {sub}?"], lambda sub: [sub, "pet"]),
    "language": (VALUE_Q["language"], lambda _: ["learning", "language", "studying"] + [v.lower() for v in LANGUAGES]),
    "instrument": (VALUE_Q["instrument"], lambda _: ["play the", "playing the", "instrument"] +
                   VALUE_POOLS["instrument"]),
    "vehicle": (VALUE_Q["vehicle"], lambda _: ["drive", "car", "wheels"] + [v.lower() for v in VALUE_POOLS["vehicle"]]),
    "sister": (["What is the name of {P}'s sister?"], lambda _: ["sister"]),
    "brother": (["What is the name of {P}'s brother?"], lambda _: ["brother"]),
    "diet": (VALUE_Q["diet"], lambda _: ["diet"] + VALUE_POOLS["diet"]),
}


@dataclass
class Candidate:
    category: str
    kind: str
    question: str
    answer: str
    evidence: list[str]  # turn ids
    first: int  # first session (0-based) after which the answer holds
    stop: int  # session at which it stops holding (exclusive); = number of sessions if never
    meta: dict = field(default_factory=dict)
    time_range: list[str] | None = None


@dataclass
class _Line:
    """One fact key's records, with helpers for "what held when"."""

    key: str
    recs: list[Record]

    @property
    def owner(self) -> str:
        return self.recs[0].owner

    def setters(self) -> list[Record]:
        return [r for r in self.recs if r.op != "NOOP"]


def make_questions(rng: random.Random, story: Story, records: list[Record], sessions: list[Session], cfg,
                   conversation_id: str) -> list[Question]:
    """Build candidates for every category, pick `questions_per_conversation` by the mix, set times."""
    num_sessions = len(sessions)
    lines: dict[str, _Line] = {}
    for r in records:
        lines.setdefault(r.key, _Line(r.key, [])).recs.append(r)
    facts = {f.key: f for f in story.facts}
    ctx = _Ctx(rng, lines, facts, num_sessions, story)
    builders = {"single_hop": ctx.single_hop, "multi_hop": ctx.multi_hop, "temporal": ctx.temporal,
                "knowledge_update": ctx.knowledge_update, "history": ctx.history,
                "conflict_resolution": ctx.conflict_resolution,
                "adversarial": lambda: _adversarial(rng, story, sessions)}
    targets = _quota(cfg.question_mix, cfg.questions_per_conversation)
    chosen: list[tuple[Candidate, int]] = []
    seen: set[tuple[str, int]] = set()
    for cat in CATEGORIES:
        if targets.get(cat, 0) <= 0:
            continue
        cands = [c for c in builders[cat]() if c.first < c.stop]
        taken = 0
        for cand in _round_robin(rng, cands):
            if taken >= targets[cat]:
                break
            j = _question_session(rng, cand, num_sessions, cfg.mid_conversation_question_rate)
            if (cand.question, j) in seen:
                continue
            seen.add((cand.question, j))
            chosen.append((cand, j))
            taken += 1
    chosen.sort(key=lambda cj: (cj[1], CATEGORY_IDS[cj[0].category], cj[0].question))
    out = []
    for i, (c, j) in enumerate(chosen):
        qtime = f"{sessions[j].timestamp[:10]}T23:59:00"
        evidence = sorted(set(c.evidence), key=_turn_order)
        sess_ids = list(dict.fromkeys(f"session_{t[1:].split(':')[0]}" for t in evidence))
        out.append(Question(
            question_id=f"{conversation_id}:q{i}", question=c.question, answer=c.answer, category=c.category,
            category_id=CATEGORY_IDS[c.category], evidence_turn_ids=evidence, evidence_session_ids=sess_ids,
            question_time=qtime, time_range=c.time_range, meta=dict(c.meta, kind=c.kind,
                                                                     asked_after_session=j + 1)))
    return out


def _turn_order(turn_id: str) -> tuple[int, int]:
    s, k = turn_id[1:].split(":")
    return int(s), int(k)


def _quota(mix: dict[str, float], n: int) -> dict[str, int]:
    """Largest-remainder apportionment of n questions over the mix (deterministic, sums to n)."""
    raw = {c: mix.get(c, 0.0) * n for c in CATEGORIES}
    out = {c: int(v) for c, v in raw.items()}
    rest = n - sum(out.values())
    for c in sorted(CATEGORIES, key=lambda c: (-(raw[c] - out[c]), CATEGORIES.index(c)))[:rest]:
        out[c] += 1
    return out


def _round_robin(rng: random.Random, cands: list[Candidate]):
    """Shuffle within each question kind, then alternate kinds, so every kind of a category shows up."""
    by_kind: dict[str, list[Candidate]] = {}
    for c in cands:
        by_kind.setdefault(c.kind, []).append(c)
    queues = list(by_kind.values())
    for q in queues:
        rng.shuffle(q)
    rng.shuffle(queues)
    while queues:
        for q in list(queues):
            yield q.pop()
            if not q:
                queues.remove(q)


def _question_session(rng, c: Candidate, num_sessions: int, mid_rate: float) -> int:
    last = num_sessions - 1
    if c.stop > last and (rng.random() >= mid_rate or c.first >= last):
        return last
    return rng.randint(c.first, min(c.stop, num_sessions) - 1)


class _Ctx:
    def __init__(self, rng, lines, facts, num_sessions, story):
        self.rng, self.lines, self.facts, self.S, self.story = rng, lines, facts, num_sessions, story
        self._seg_cache: dict[tuple[str, bool], list] = {}

    # ---- helpers -------------------------------------------------------------------------------------
    def _fields(self, line: _Line, value: str | None = None) -> dict:
        f = self.facts[line.key]
        v = value if value is not None else line.recs[0].value
        return {"P": line.owner, "v": v, "av": with_article(v) if v else "", "sub": f.sub,
                "rel": RELATIONS.get(f.attr, "")}

    def _attr(self, line: _Line) -> str:
        return self.facts[line.key].attr

    def _kind(self, line: _Line) -> str:
        return self.facts[line.key].kind

    def _value_q(self, line: _Line) -> list[str]:
        a = self._attr(line)
        return VALUE_Q["relation" if a in RELATIONS else a]

    def _segments(self, line: _Line, detail: bool = False):
        """(record that set the value, start session, stop session) for each stretch the value was constant;
        stretches before a correction are dropped (see module docstring); a DELETE ends the last one.
        Refinements keep the value, so they start a new stretch only when `detail` is asked for."""
        cached = self._seg_cache.get((line.key, detail))
        if cached is not None:
            return cached
        setters = [r for r in line.setters() if detail or r.step != "refine"]
        segs = []
        for i, r in enumerate(setters):
            if r.op == "DELETE":
                continue
            nxt = setters[i + 1] if i + 1 < len(setters) else None
            if nxt is not None and nxt.step == "correct":
                continue
            segs.append((r, r.session, nxt.session if nxt is not None else self.S))
        self._seg_cache[(line.key, detail)] = segs
        return segs

    def _state(self, line: _Line, session: int):
        """After `session`: ("none" | "dead" | "tainted", None) or ("live", setter record)."""
        seg = next((sg for sg in self._segments(line) if sg[1] <= session < sg[2]), None)
        if seg is not None:
            return "live", seg[0]
        before = [r for r in line.setters() if r.session <= session]
        if not before:
            return "none", None
        return ("dead" if before[-1].op == "DELETE" else "tainted"), None

    def _unique_end(self, line: _Line) -> bool:
        """"Which hobby / plan did X give up / cancel?" needs exactly one such fact of X ever ended."""
        kind, attr = self._kind(line), self._attr(line)
        same = [ln for ln in self.lines.values() if ln.owner == line.owner and
                (self._kind(ln) == "plan" if kind == "plan" else self._attr(ln) == attr)]
        return sum(1 for ln in same if any(r.op == "DELETE" for r in ln.recs)) <= 1

    def _value_setter(self, line: _Line, upto: Record) -> Record:
        """The latest record at or before `upto` that stated the current value (not a refinement)."""
        best = line.recs[0]
        for r in line.recs:
            if r.op in ("ADD",) or r.step in ("change", "correct"):
                best = r
            if r is upto:
                break
        return best

    def _q(self, templates, **fields) -> str:
        return self.rng.choice(templates).format(**fields)

    def _attr_lines(self):
        return [ln for ln in self.lines.values() if self._kind(ln) == "attr"]

    # ---- categories ----------------------------------------------------------------------------------
    def single_hop(self) -> list[Candidate]:
        out = []
        for ln in self._attr_lines():
            a = self._attr(ln)
            for rec, start, stop in self._segments(ln):
                if rec.step == "introduce" and a != "hobby":
                    out.append(Candidate("single_hop", "value", self._q(self._value_q(ln), **self._fields(ln, rec.value)),
                                         rec.value, [rec.turn_id], start, stop, {"entry": ln.key}))
            for rec, start, stop in self._segments(ln, detail=True):
                if rec.step == "refine" and a in DETAIL_Q:
                    out.append(Candidate("single_hop", "detail", self._q(DETAIL_Q[a], **self._fields(ln, rec.value)),
                                         rec.detail, [rec.turn_id], start, stop, {"entry": ln.key}))
        for ln in self.lines.values():
            if self._kind(ln) == "trip":
                rec = ln.recs[0]
                f = self.facts[ln.key]
                q = self._q(["Which city did {P} spend {dur} in?", "Where did {P} spend {dur}?"],
                            P=ln.owner, dur=f.duration)
                out.append(Candidate("single_hop", "trip_city", q, rec.value, [rec.turn_id], rec.session, self.S,
                                     {"entry": ln.key}))
        return out

    def knowledge_update(self) -> list[Candidate]:
        out = []
        for ln in self.lines.values():
            kind, a = self._kind(ln), self._attr(ln)
            if kind == "attr":
                for rec, start, stop in self._segments(ln):
                    if rec.step == "change":
                        q = self._q(self._value_q(ln), **self._fields(ln, rec.value))
                        q = q[:-1] + self.rng.choice([" now?", " these days?", " currently?"])
                        out.append(Candidate("knowledge_update", "current", q, rec.value, [rec.turn_id], start,
                                             stop, {"entry": ln.key}))
            elif kind == "plan":
                for rec, start, stop in self._segments(ln):
                    if rec.step == "change":
                        q = self._q(["When is {P} planning to {v} now?", "When does {P} plan to {v} now?"],
                                    **self._fields(ln, rec.value))
                        out.append(Candidate("knowledge_update", "current", q, format_date(rec.when),
                                             [rec.turn_id], start, stop, {"entry": ln.key},
                                             list(period(rec.when))))
            key_attr = "plan" if kind == "plan" else a
            if key_attr not in STILL_Q:
                continue
            for rec in ln.recs:
                if rec.op == "DELETE":
                    q = STILL_Q[key_attr].format(**self._fields(ln, rec.value))
                    out.append(Candidate("knowledge_update", "ended", q, "No", [rec.turn_id], rec.session,
                                         self.S, {"entry": ln.key}))
            # "Yes" counterparts: a fact re-mentioned later and still true, so "still" is not always "No".
            segs = self._segments(ln)
            for i, r in enumerate(ln.recs):
                if r.step not in ("repeat", "refine"):
                    continue
                seg = next((s for s in segs if s[1] <= r.session < s[2]), None)
                if seg is None:
                    continue
                q = STILL_Q[key_attr].format(**self._fields(ln, r.value))
                out.append(Candidate("knowledge_update", "still", q, "Yes", [r.turn_id], r.session, seg[2],
                                     {"entry": ln.key}))
        return out

    def history(self) -> list[Candidate]:
        out = []
        for ln in self.lines.values():
            kind, a = self._kind(ln), self._attr(ln)
            if kind not in ("attr", "plan"):
                continue
            key_attr = "plan" if kind == "plan" else a
            setters = ln.setters()
            for i, rec in enumerate(setters):
                later_fix = next((r.session for r in setters[i + 1:] if r.step == "correct"), self.S)
                if rec.step == "change" and key_attr in BEFORE_CHANGE_Q:
                    prev = self._value_setter(ln, setters[i - 1])
                    if kind == "plan":
                        q = self._q(BEFORE_CHANGE_Q["plan"], **self._fields(ln, rec.value))
                        ans, tr = format_date(setters[i - 1].when), list(period(setters[i - 1].when))
                    else:
                        fl = self._fields(ln, prev.value)
                        q = self._q(BEFORE_CHANGE_Q[a], new=rec.value, anew=with_article(rec.value), **fl)
                        ans, tr = setters[i - 1].value, None
                    out.append(Candidate("history", "before_change", q, ans, [prev.turn_id, rec.turn_id],
                                         rec.session, later_fix, {"entry": ln.key}, tr))
                if rec.op == "DELETE" and key_attr in ENDED_Q:
                    if key_attr in ("hobby", "plan") and not self._unique_end(ln):
                        continue
                    # a rescheduling restates a plan's date, not what it is: name the introduction
                    prev = ln.recs[0] if kind == "plan" else self._value_setter(ln, rec)
                    ans = rec.value  # for a plan: its phrase ("renovate the kitchen")
                    q = ENDED_Q[key_attr].format(**self._fields(ln, rec.value))
                    out.append(Candidate("history", "ended", q, ans, [prev.turn_id, rec.turn_id], rec.session,
                                         self.S, {"entry": ln.key}))
        return out

    def conflict_resolution(self) -> list[Candidate]:
        out = []
        for ln in self.lines.values():
            kind = self._kind(ln)
            setters = ln.setters()
            stops = {id(r): stop for r, _, stop in self._segments(ln)}
            for i, rec in enumerate(setters):
                if rec.step != "correct" or i == 0 or id(rec) not in stops:
                    continue
                stop = stops[id(rec)]
                orig = self._value_setter(ln, setters[i - 1])
                if kind == "attr":
                    q = self._q(self._value_q(ln), **self._fields(ln, rec.value))
                    out.append(Candidate("conflict_resolution", "corrected_value", q, rec.value,
                                         [orig.turn_id, rec.turn_id], rec.session, stop,
                                         {"entry": ln.key, "superseded": orig.value}))
                else:
                    q = self._when_q(ln)
                    out.append(Candidate("conflict_resolution", "corrected_date", q, format_date(rec.when),
                                         [orig.turn_id, rec.turn_id], rec.session, stop,
                                         {"entry": ln.key, "superseded": format_date(orig.when)},
                                         list(period(rec.when))))
        return out

    def _when_q(self, ln: _Line) -> str:
        f = self.facts[ln.key]
        if f.kind == "event":
            e = _EVENTS[f.attr]
            return self._q(["When did {P} {base}?", "When was {P}'s {noun}?"], P=ln.owner, base=e.base, noun=e.noun)
        if f.kind == "trip":
            return self._q(["When did {P} visit {v}?", "When was {P}'s trip to {v}?"], P=ln.owner, v=f.value)
        return self._q(["When is {P} planning to {v}?", "When does {P} plan to {v}?"], P=ln.owner, v=f.value)

    def _dated(self):
        """Past events and trips with a settled date: (line, setter, start, stop)."""
        out = []
        for ln in self.lines.values():
            if self._kind(ln) in ("event", "trip"):
                for rec, start, stop in self._segments(ln):
                    out.append((ln, rec, start, stop))
        return out

    def temporal(self) -> list[Candidate]:
        out = []
        dated = self._dated()
        for ln, rec, start, stop in dated:
            if rec.step == "introduce":  # corrected dates are conflict_resolution questions
                out.append(Candidate("temporal", "when", self._when_q(ln), format_date(rec.when), [rec.turn_id],
                                     start, stop, {"entry": ln.key}, list(period(rec.when))))
            if self._kind(ln) == "trip":
                f = self.facts[ln.key]
                q = self._q(["How long did {P} spend in {v}?", "How long was {P}'s trip to {v}?"],
                            P=ln.owner, v=f.value)
                intro = ln.recs[0]
                out.append(Candidate("temporal", "duration", q, f.duration, [intro.turn_id], intro.session, self.S,
                                     {"entry": ln.key}, list(period(rec.when))))
        for ln in self.lines.values():
            if self._kind(ln) == "plan":
                for rec, start, stop in self._segments(ln):
                    if rec.step == "introduce":
                        out.append(Candidate("temporal", "when", self._when_q(ln), format_date(rec.when),
                                             [rec.turn_id], start, stop, {"entry": ln.key}, list(period(rec.when))))
        # Pairs of past events: order, before/after, days between. All pairs are quadratic in the number of
        # events and only a few are asked, so at most MAX_PAIRS random pairs become candidates.
        periods = [period(rec.when) for _, rec, _, _ in dated]
        pairs = [(i, j) for i in range(len(dated)) for j in range(i + 1, len(dated))]
        if len(pairs) > MAX_PAIRS:
            pairs = self.rng.sample(pairs, MAX_PAIRS)
        for i, j in pairs:
            l1, r1, s1, e1 = dated[i]
            l2, r2, s2, e2 = dated[j]
            start, stop = max(s1, s2), min(e1, e2)
            if start >= stop or l1.key == l2.key:
                continue
            p1, p2 = periods[i], periods[j]
            if not (p1[1] < p2[0] or p2[1] < p1[0]):
                continue  # overlapping periods have no order
            evidence = [self._value_setter(l1, r1).turn_id, r1.turn_id, self._value_setter(l2, r2).turn_id,
                        r2.turn_id]
            n1, n2 = self._noun(l1), self._noun(l2)
            tr = [min(p1[0], p2[0]), max(p1[1], p2[1])]
            meta = {"entry": [l1.key, l2.key]}
            first = f"{l1.owner}'s {n1}" if p1[1] < p2[0] else f"{l2.owner}'s {n2}"
            out.append(Candidate("temporal", "first", self._q(
                ["Which happened first, {P}'s {n1} or {Q}'s {n2}?", "Which came earlier: {P}'s {n1} or {Q}'s {n2}?"],
                P=l1.owner, Q=l2.owner, n1=n1, n2=n2), first, evidence, start, stop, meta, tr))
            out.append(Candidate("temporal", "before_after", f"Did {l1.owner} {self._base(l1)} before or after {l2.owner} {self._past(l2)}?",
                "before" if p1[1] < p2[0] else "after", evidence, start, stop, meta, tr))
            if r1.when.granularity == "day" and r2.when.granularity == "day":
                days = abs((dt.date.fromisoformat(r1.when.date) - dt.date.fromisoformat(r2.when.date)).days)
                out.append(Candidate("temporal", "days_between", self._q(
                    ["How many days passed between {P}'s {n1} and {Q}'s {n2}?",
                     "How many days were there between {P}'s {n1} and {Q}'s {n2}?"],
                    P=l1.owner, Q=l2.owner, n1=n1, n2=n2), f"{days} day" + ("s" if days != 1 else ""),
                    evidence, start, stop, meta, tr))
        return out

    def _noun(self, ln: _Line) -> str:
        f = self.facts[ln.key]
        return f"trip to {f.value}" if f.kind == "trip" else _EVENTS[f.attr].noun

    def _base(self, ln: _Line) -> str:
        f = self.facts[ln.key]
        return f"visit {f.value}" if f.kind == "trip" else _EVENTS[f.attr].base

    def _past(self, ln: _Line) -> str:
        f = self.facts[ln.key]
        return f"visited {f.value}" if f.kind == "trip" else _EVENTS[f.attr].past

    def multi_hop(self) -> list[Candidate]:
        out = []
        owners = self.story.speakers
        # lists over a multi-valued attribute (pets, hobbies): constant stretches of the set of live values
        for person in owners:
            for attr in ("pet", "hobby"):
                lns = [ln for ln in self.lines.values() if ln.owner == person and self._attr(ln) == attr
                       and self._kind(ln) == "attr"]
                if len(lns) < 2:
                    continue
                bounds = sorted({r.session for ln in lns for r in ln.setters()} | {self.S})
                for b0, b1 in itertools.pairwise(bounds):
                    live = []
                    for ln in lns:
                        state, rec = self._state(ln, b0)
                        if state == "tainted":  # a value later called a mistake: no question here
                            live = []
                            break
                        if state == "live":
                            live.append((ln, rec))
                    if len(live) < 2 or len({r.session for _, r in live}) < 2:
                        continue
                    live.sort(key=lambda lr: _turn_order(lr[0].recs[0].turn_id))
                    evidence = [self._value_setter(ln, r).turn_id for ln, r in live]
                    answer = ", ".join(r.value for _, r in live)
                    q = self._q(LIST_Q[attr], P=person)
                    out.append(Candidate("multi_hop", "list", q, answer, evidence, b0, b1,
                                         {"entry": [ln.key for ln, _ in live]}))
        # the same attribute for two speakers
        for attr, template in PAIR_Q.items():
            for i, pa in enumerate(owners):
                for pb in owners[i + 1:]:
                    la, lb = self.lines.get(f"{pa}/{attr}"), self.lines.get(f"{pb}/{attr}")
                    if la is None or lb is None:
                        continue
                    for ra, sa, ea in self._segments(la):
                        for rb, sb, eb in self._segments(lb):
                            start, stop = max(sa, sb), min(ea, eb)
                            if start >= stop:
                                continue
                            ra_v, rb_v = self._value_setter(la, ra), self._value_setter(lb, rb)
                            out.append(Candidate("multi_hop", "pair", template.format(A=pa, B=pb),
                                                 f"{ra.value}, {rb.value}", [ra_v.turn_id, rb_v.turn_id], start,
                                                 stop, {"entry": [la.key, lb.key]}))
        # the city someone lived in when an event happened: needs the event's date and the city's timeline
        dates = [dt.date.fromisoformat(d[:10]) for d in self.story.session_dates]
        for ln, rec, start, stop in self._dated():
            city = self.lines.get(f"{ln.owner}/city")
            if city is None or rec.when.granularity != "day":
                continue
            d = dt.date.fromisoformat(rec.when.date)
            for crec, cs, ce in self._segments(city):
                lo = dates[cs]  # the bank holds the value from the session that stated it
                hi = dates[ce] if ce < self.S else None
                if lo + dt.timedelta(days=3) <= d and (hi is None or d + dt.timedelta(days=3) <= hi):
                    setter = self._value_setter(city, crec)
                    ev = [rec.turn_id, setter.turn_id]
                    q = self._q(["Where was {P} living when {P} {past}?", "Which city did {P} live in when {P} {past}?"],
                                P=ln.owner, past=self._past(ln))
                    out.append(Candidate("multi_hop", "city_at_event", q, crec.value, ev,
                                         max(start, cs, rec.session), stop, {"entry": [ln.key, city.key],
                                                                             "event_time": rec.when.date}))
        return out


def _adversarial(rng: random.Random, story: Story, sessions: list[Session]) -> list[Candidate]:
    """Questions about what the dialogue never mentions; the keywords are checked against the whole text."""
    text = " ".join(t.text for s in sessions for t in s.turns).lower()
    words = set(re.findall(r"[a-z0-9'-]+", text))

    def absent(keywords: list[str]) -> bool:
        for kw in keywords:
            kw = kw.lower()
            if " " in kw:
                if kw in text:
                    return False
            elif kw in words or kw + "s" in words or kw + "es" in words or kw + "'s" in words:
                return False
        return True

    S = len(sessions)
    out = []
    for person in story.speakers:
        for template, keywords in ADVERSARIAL_ATTRS:
            if absent(keywords):
                out.append(Candidate("adversarial", "unmentioned_attribute", template.format(P=person),
                                     ABSTAIN_ANSWER, [], 0, S, {"subject": person, "keywords": keywords}))
        for attr, (templates, kw) in ADVERSARIAL_CATALOG.items():
            sub = rng.choice(PET_SPECIES) if attr == "pet" else None
            keywords = kw(sub)
            if absent(keywords):
                q = rng.choice(templates).format(P=person, sub=sub)
                out.append(Candidate("adversarial", "absent_attribute", q, ABSTAIN_ANSWER, [], 0, S,
                                     {"subject": person, "keywords": keywords}))
    strangers = [n for n in OTHER_NAMES if n.lower() not in words]
    for name in rng.sample(strangers, min(4, len(strangers))):
        attr = rng.choice(["city", "job", "food", "music", "language", "instrument"])
        q = rng.choice(VALUE_Q[attr]).format(P=name)
        out.append(Candidate("adversarial", "unknown_person", q, ABSTAIN_ANSWER, [], 0, S,
                             {"subject": name, "keywords": [name]}))
    return out
