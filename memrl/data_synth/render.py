"""Dialogue rendering: utterance templates and the pass that turns a story into turns.

- Text. Several templates per attribute and lifecycle step, sentence-level openers/closers, reactions to the
  other speaker, chit-chat and distractors about third parties ("my cousin moved to Lyon"), so a retriever
  cannot match question strings to utterances verbatim. `render_dialogue` walks the turns in order, applies
  each scheduled step to the fact it belongs to, and records what became true (`Record`s), from which gold ops
  and questions are derived.

Time expressions (rendering and resolving "last Tuesday", "two weeks ago", ...) are in
`memrl.data_synth.time_expressions`.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from memrl.data.schema import Session, Turn
from memrl.data_synth.time_expressions import (
    MONTHS,
    add_months,
    date_phrase,
    day_ref,
    future_time,
    month_ref,
    past_time,
    pick,
)
from memrl.data_synth.world import (
    BREEDS,
    CITIES,
    EVENTS,
    FOODS,
    HOBBIES,
    JOBS,
    LANGUAGES,
    LEARNING_MODES,
    NEIGHBORHOODS,
    PET_NAMES,
    PET_SPECIES,
    PLANS,
    RELATIONS,
    VALUE_POOLS,
    WORKPLACES,
    Fact,
    Step,
    Story,
    TimeRef,
)

_EVENTS = {e.slug: e for e in EVENTS}
_PLANS = {p.slug: p for p in PLANS}


# ==== templates ========================================================================================
# Fields: {v} value, {V} value capitalised, {av} value with its article, {old}/{aold} the replaced value,
# {d} detail, {sub} pet species, {rel} relation word, {time}/{Time} a time expression, {dur} a duration,
# {past}/{noun}/{phrase} event and plan wording.
T: dict[str, dict[str, list[str]]] = {
    "city": {
        "introduce": ["I live in {v}.", "I've been living in {v} for a few years now.",
                      "Home for me is {v} these days.", "Life in {v} is pretty good, honestly.",
                      "I'm based in {v}, have been for a while."],
        "repeat": ["It's been raining nonstop here in {v}.", "{V} is so lovely this time of year.",
                   "Traffic in {v} was terrible again.", "There's a new café near me in {v} that I love."],
        "refine": ["My place in {v} is in {d}, I love the area.",
                   "I live in {d}, which is my favorite part of {v}."],
        "change": ["Big news: I just moved to {v}!", "I've relocated to {v}, still unpacking boxes.",
                   "We finally moved, I'm living in {v} now.", "New chapter: I packed up and moved to {v}."],
        "correct": ["Sorry, I misspoke before. I live in {v}, not {old}.",
                    "Actually, it's {v} where I live, not {old}. My mistake!",
                    "Wait, did I say {old}? I meant {v}, that's where I live."],
    },
    "job": {
        "introduce": ["I work as {av}.", "I'm {av}, have been for years.", "My job? I'm {av}.",
                      "Work has been busy. Being {av} is never boring."],
        "repeat": ["Long shift again, being {av} is exhausting sometimes.",
                   "Work as {av} has been hectic this week.", "Some days I really love being {av}."],
        "refine": ["I'm {av} at {d}, by the way.", "The {v} job is at {d}, and I like the team."],
        "change": ["I started a new job, I'm {av} now!", "I switched careers and now work as {av}.",
                   "Guess what, I got hired as {av}."],
        "correct": ["Oops, I said {old} before, but I'm actually {av}.",
                    "Actually, I'm {av}, not {aold}. I misspoke."],
        "retract": ["I quit my job as {av}, taking a break for now.",
                    "I'm not working as {av} anymore, I left that job.",
                    "I stopped being {av}. Time for something new."],
    },
    "pet": {
        "introduce": ["I have a {sub} named {v}.", "My {sub} {v} is the sweetest.",
                      "Have I told you about my {sub}? {V} is a handful!", "We adopted a {sub} called {v}."],
        "repeat": ["{V} kept me up all night, haha.", "Took {v} to the vet, all good.", "{V} says hi!",
                   "My {sub} {v} has been so funny lately."],
        "refine": ["{V} is a {d}, by the way.", "My {sub} {v} is a {d}, so full of energy."],
        "correct": ["Sorry, I mixed that up. My {sub} is called {v}, not {old}.",
                    "Actually, my {sub}'s name is {v}, not {old}."],
        "retract": ["Sad news: my {sub} {v} passed away.", "We had to rehome {v}, my {sub}. It was hard.",
                    "{V}, my {sub}, is no longer with us."],
    },
    "hobby": {
        "introduce": ["I've gotten really into {v} lately.", "I spend most weekends on {v}.",
                      "I picked up {v} recently and I love it.", "{V} is my favorite way to relax."],
        "repeat": ["Did some {v} again this weekend.", "I can't stop talking about {v}, haha."],
        "retract": ["I gave up {v}, I just didn't have time anymore.", "I've stopped doing {v}.",
                    "No more {v} for me, I lost interest."],
    },
    "food": {
        "introduce": ["My favorite food is {v}.", "I could eat {v} every day.",
                      "Nothing beats {v}, it's my favorite."],
        "repeat": ["Had {v} for dinner again, ha.", "Found a great new place for {v}."],
        "change": ["These days {v} is my favorite food.", "I've switched allegiances: {v} is my new favorite.",
                   "Lately I'm obsessed with {v}, it's my favorite now."],
        "correct": ["Actually, my favorite is {v}, not {old}.", "I misspoke. {V} is my favorite food, not {old}."],
    },
    "music": {
        "introduce": ["I mostly listen to {v}.", "{V} is my favorite kind of music.", "I'm a huge {v} fan."],
        "repeat": ["Been playing a lot of {v} while I work.", "Went down a {v} rabbit hole again."],
        "change": ["I've really gotten into {v} lately, it's my favorite now.",
                   "These days I listen to {v} more than anything."],
        "correct": ["Actually, it's {v} I love most, not {old}.", "Correction: {v} is my favorite, not {old}."],
    },
    "relation": {
        "introduce": ["My {rel} {v} says hi.", "I have a {rel} named {v}.",
                      "My {rel}, {v}, is coming over for dinner."],
        "repeat": ["Talked to my {rel} {v} for hours.", "{V} and I went for coffee, it was nice."],
        "correct": ["Sorry, my {rel}'s name is {v}, not {old}.", "Oops, I meant {v}, not {old}. That's my {rel}."],
        "retract": ["{V} and I broke up.", "I'm not with {v} anymore, we split up."],
    },
    "language": {
        "introduce": ["I'm learning {v}.", "I started studying {v}.", "I've been practising my {v} every day."],
        "repeat": ["My {v} is slowly getting better.", "Learned some new {v} words."],
        "refine": ["I'm learning {v} {d} now.", "I've been studying {v} {d}, it really helps."],
        "change": ["I switched from {old} to {v}.", "I've started learning {v} instead of {old}."],
        "correct": ["Actually, it's {v} I'm learning, not {old}."],
        "retract": ["I stopped learning {v}, too much going on.", "I've given up on {v} for now."],
    },
    "diet": {
        "introduce": ["I'm {v}.", "I've been {v} for years.", "Being {v}, I always check the menu first."],
        "repeat": ["Found a great {v} recipe.", "Being {v} is easier than people think."],
        "change": ["I've gone {v}.", "I'm {v} now, big change for me."],
        "correct": ["I'm {v}, not {old}, just to be clear."],
        "retract": ["I'm not {v} anymore.", "I gave up being {v}."],
    },
    "vehicle": {
        "introduce": ["I drive {av}.", "My {v} is my pride and joy.", "I get around in {av}."],
        "repeat": ["Washed the {v}, it looks brand new.", "The {v} needs new tires."],
        "change": ["I sold my old car and bought {av}.", "New wheels: I'm driving {av} now."],
        "correct": ["Actually, it's {av}, not {aold}."],
        "retract": ["I sold my {v}, so I'm taking the bus now.", "No more {v}, I sold it."],
    },
    "instrument": {
        "introduce": ["I play the {v}.", "I've been playing the {v} since I was a kid.",
                      "Practising the {v} takes up my evenings."],
        "repeat": ["Practised the {v} all evening.", "My neighbors must be sick of my {v} by now."],
        "change": ["I switched from the {old} to the {v}.", "I've taken up the {v} instead of the {old}."],
        "correct": ["It's the {v} I play, not the {old}."],
        "retract": ["I stopped playing the {v}.", "I sold my {v} and quit playing."],
    },
    "event": {
        "introduce": ["I {past} {time}!", "{Time}, I {past}.", "Guess what? I {past} {time}.",
                      "I finally {past} {time}, it was amazing.", "Oh, and I {past} {time}, so much fun."],
        "repeat": ["I'm still thinking about the {noun}.", "The {noun} was honestly the highlight of my month.",
                   "Did I show you photos from the {noun}?"],
        "correct": ["Wait, I got the date wrong: the {noun} was {time}, not {old}.",
                    "Correction, the {noun} was actually {time}."],
    },
    "trip": {
        "introduce": ["I spent {dur} in {v} {time}.", "{Time}, I was in {v} for {dur}.",
                      "I got back from {dur} in {v}. That was {time}."],
        "repeat": ["I miss {v} already.", "Still sorting through my photos from {v}."],
        "correct": ["Small correction: the {v} trip was {time}, not {old}."],
    },
    "plan": {
        "introduce": ["I'm planning to {phrase} {time}.", "We're hoping to {phrase} {time}.",
                      "The plan is to {phrase} {time}.", "I've decided to {phrase} {time}!"],
        "repeat": ["Counting down the days until the {noun}!", "Still getting ready for the {noun}."],
        "change": ["The {noun} got moved, it's {time} now.", "Change of plans: the {noun} is {time} instead."],
        "retract": ["The {noun} is off, sadly.", "We cancelled the {noun}.",
                    "Looks like the {noun} isn't happening after all."],
    },
}
for _rel in RELATIONS:
    T[_rel] = T["relation"]

OPENERS = ["Hey {other}! ", "Oh, hi! ", "Good to hear from you. ", "So much has happened. ",
           "Quick update. ", "You know what? ", "Okay, news. "]
CLOSERS = [" How about you?", " What about you?", " Anyway, how are things with you?", " :)", " Ha!",
           " Crazy, right?", " Just wanted to share."]
REACTIONS = {
    "good": ["That's great! ", "Wow, congrats! ", "Oh nice, that sounds fun. ", "Love that for you! ",
             "No way, that's awesome. ", "Good for you! "],
    "bad": ["Oh no, I'm sorry to hear that. ", "That must be hard. ", "Aw, that's a shame. "],
    "correct": ["Ah, got it, thanks for clarifying. ", "No worries, easy to mix up! "],
    "repeat": ["Ha, sounds like you! ", "I remember you mentioning that. "],
}
CHITCHAT = [
    "How have you been?", "That sounds amazing!", "Haha, I know what you mean.", "It's been such a long week.",
    "I really need a vacation.", "What have you been up to?", "Totally agree with you.",
    "I'm so glad we get to chat.", "The weather has been wild lately.", "Have you watched anything good?",
    "I've been reading a great novel.", "Same here, honestly.", "Tell me more!", "That's hilarious.",
    "I hope things calm down soon.", "Thanks for asking!", "Let's catch up again soon.",
    "I'm trying to sleep more.", "Sounds like a plan.", "I can't believe how fast time flies.",
    "Anyway, enough about me.", "Things have been pretty quiet on my end.", "I've been cooking at home a lot.",
    "It's nice to slow down sometimes.", "You always make me laugh.", "I've been meaning to ask you that.",
    "Life has been a bit chaotic.", "That reminds me, I need to call my parents.", "Honestly, same.",
    "I'm proud of you, you know.", "Work-life balance is hard.", "I've been trying to drink more water.",
]
DISTRACTOR_RELS = ["cousin", "neighbor", "coworker", "roommate", "friend", "colleague"]
DISTRACTORS = [
    ("city", "My {drel} {n} just moved to {city}."), ("city", "My {drel} {n} lives in {city} now."),
    ("job", "A friend of mine works as {ajob}."), ("job", "My {drel} {n} just became {ajob}."),
    ("pet", "My {drel} {n} has a {species} named {pet}."), ("pet", "{N}'s {species} {pet} is adorable."),
    ("hobby", "My {drel} is really into {hobby}."), ("hobby", "{N} keeps inviting me to try {hobby}."),
    ("food", "My {drel} {n} loves {food}."), ("language", "{N} is learning {lang}."),
    ("event", "My {drel} {n} {past} {time}."), ("event", "{N} {past} {time}, apparently."),
]


def with_article(word: str) -> str:
    return ("an " if word[0].lower() in "aeiou" else "a ") + word


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


# ==== canonical memory text ============================================================================
def canonical(f: Fact) -> str:
    """The short memory text a perfect manager writes for the fact's current state (SFT target)."""
    p, v, d = f.owner, f.value, f.detail
    a = f.attr
    if f.kind == "event":
        return f"{p} {_EVENTS[a].past} {date_phrase(f.when)}"
    if f.kind == "trip":
        return f"{p} spent {f.duration} in {v} {date_phrase(f.when)}"
    if f.kind == "plan":
        return f"{p} plans to {_PLANS[a].phrase} {date_phrase(f.when)}"
    if a == "city":
        return f"{p} lives in {v}" + (f", in {d}" if d else "")
    if a == "job":
        return f"{p} works as {with_article(v)}" + (f" at {d}" if d else "")
    if a == "pet":
        return f"{p} has a {f.sub} named {v}" + (f", a {d}" if d else "")
    if a == "hobby":
        return f"{p} enjoys {v}"
    if a == "food":
        return f"{p}'s favorite food is {v}"
    if a == "music":
        return f"{p}'s favorite music is {v}"
    if a in RELATIONS:
        return f"{p}'s {RELATIONS[a]} is named {v}"
    if a == "language":
        return f"{p} is learning {v}" + (f" {d}" if d else "")
    if a == "diet":
        return f"{p} is {v}"
    if a == "vehicle":
        return f"{p} drives {with_article(v)}"
    if a == "instrument":
        return f"{p} plays the {v}"
    raise ValueError(f"no canonical text for {a!r}")


# ==== the rendering pass ===============================================================================
@dataclass
class Record:
    """What one step made true: the unit gold ops and questions are derived from."""

    key: str
    owner: str
    op: str  # ADD | UPDATE | DELETE | NOOP
    step: str  # introduce | repeat | refine | change | correct | retract
    session: int  # 0-based
    turn_id: str
    value: str
    old_value: str | None
    detail: str | None
    text: str  # canonical memory text after the step (for DELETE: the text being closed)
    when: TimeRef | None
    old_when: TimeRef | None = None


_STEP_OP = {"introduce": "ADD", "repeat": "NOOP", "refine": "UPDATE", "change": "UPDATE", "correct": "UPDATE",
            "retract": "DELETE"}
_REACTION_OF = {"introduce": "good", "refine": "good", "change": "good", "correct": "correct",
                "repeat": "repeat", "retract": "bad"}


def schedule(rng: random.Random, story: Story, turns_per_session: list[int]) -> list[list[tuple[str, Step | None]]]:
    """Assign steps to (session, turn) slots of their owner. Returns per session [(speaker, step or None)].

    Steps planned for a session go to random slots of their owner in that session, in an order that keeps
    each fact's lifecycle order; steps that do not fit move to the next session, and whatever does not fit
    in the last session is dropped (with the rest of its fact's lifecycle, which comes after it).
    """
    speakers = story.speakers
    n = len(speakers)
    planned: dict[tuple[int, str], list[Step]] = {}
    for st in story.steps:
        planned.setdefault((st.session, story.facts[st.fact].owner), []).append(st)
    carry: dict[str, list[Step]] = {p: [] for p in speakers}
    sessions = []
    for s in range(len(story.session_dates)):
        length = rng.randint(turns_per_session[0], turns_per_session[1])
        first = rng.randrange(n)
        layout: list[tuple[str, Step | None]] = [(speakers[(first + k) % n], None) for k in range(length)]
        for person in speakers:
            pending = carry[person] + planned.get((s, person), [])
            if not pending:
                continue
            rng.shuffle(pending)
            positions: dict[int, list[int]] = {}
            for i, st in enumerate(pending):
                positions.setdefault(st.fact, []).append(i)
            ordered: list[Step | None] = [None] * len(pending)
            for pos in positions.values():
                for i, st in zip(pos, sorted((pending[i] for i in pos), key=lambda st: st.order)):
                    ordered[i] = st
            slots = [k for k in range(length) if layout[k][0] == person]
            take = min(len(slots), len(ordered))
            chosen = sorted(rng.sample(slots, take))
            for k, st in zip(chosen, ordered[:take]):
                layout[k] = (person, st)
            carry[person] = ordered[take:]  # type: ignore[assignment]
        sessions.append(layout)
    return sessions


@dataclass
class Rendered:
    sessions: list[Session]
    records: list[Record]
    mentioned_third_parties: list[str]


def render_dialogue(rng: random.Random, story: Story, cfg) -> Rendered:
    """Walk all turns in order, speak each scheduled step, fill the rest with chit-chat and distractors."""
    layout = schedule(rng, story, cfg.turns_per_session)
    facts = story.facts
    history: dict[int, list[str]] = {}  # fact -> all values it has had (changes never go back)
    person_values: dict[tuple[str, str], set[str]] = {}  # (owner, attr) -> values in use (multi attributes)
    records: list[Record] = []
    sessions: list[Session] = []
    distractor_names = story.third_parties[8:]
    mentioned: list[str] = []
    rel_rate = cfg.relative_time_rate
    others_of = {p: [o for o in story.speakers if o != p] for p in story.speakers}
    for s, slots in enumerate(layout):
        anchor = dt.date.fromisoformat(story.session_dates[s][:10])
        turns: list[Turn] = []
        prev_reaction: str | None = None  # reaction key to the previous turn's step, if it had one
        prev_speaker: str | None = None
        for k, (speaker, step) in enumerate(slots):
            turn_id = f"D{s + 1}:{k + 1}"
            others = others_of[speaker]
            other = others[0] if len(others) == 1 else pick(rng, others)
            text = None
            meta: dict = {}
            if step is not None:
                f = facts[step.fact]
                out = _speak(rng, f, step, anchor, rel_rate, history, person_values, story)
                if out is not None:
                    body, mentions, when_expr, rec_fields = out
                    rec = Record(f.key, f.owner, _STEP_OP[step.kind], step.kind, s, turn_id, **rec_fields)
                    records.append(rec)
                    text = _wrap(rng, body, other, prev_reaction if prev_speaker != speaker else None)
                    meta = {"kind": "fact", "facts": [f.key], "mentions": mentions}
                    if when_expr is not None:
                        meta["time_expressions"] = [_time_meta(when_expr)]
                    prev_reaction = _REACTION_OF[step.kind]
            if text is None:
                if prev_reaction is not None and prev_speaker != speaker and rng.random() < 0.6:
                    text = pick(rng, REACTIONS[prev_reaction]).strip()
                    meta = {"kind": "reaction"}
                elif rng.random() < cfg.distractor_rate:
                    text, meta = _distractor(rng, anchor, rel_rate, distractor_names, mentioned)
                else:
                    text = pick(rng, CHITCHAT)
                    meta = {"kind": "chitchat"}
                prev_reaction = None
            turns.append(Turn(turn_id, speaker, text, meta))
            prev_speaker = speaker
        sessions.append(Session(f"session_{s + 1}", s + 1, story.session_dates[s], turns))
    return Rendered(sessions, records, mentioned)


def _time_meta(ref: TimeRef) -> dict:
    return {"text": ref.expression, "date": ref.date, "granularity": ref.granularity}


def _wrap(rng, body: str, other: str, reaction: str | None) -> str:
    r = rng.random()
    if reaction is not None and r < 0.35:
        return pick(rng, REACTIONS[reaction]) + body
    if r < 0.5:
        return pick(rng, OPENERS).format(other=other) + body
    if r < 0.65:
        return body + pick(rng, CLOSERS)
    return body


def _distractor(rng, anchor, rel_rate, names, mentioned) -> tuple[str, dict]:
    kind, template = pick(rng, DISTRACTORS)
    n = pick(rng, names)
    fields = {"n": n, "N": n, "drel": pick(rng, DISTRACTOR_RELS)}
    meta: dict = {"kind": "distractor"}
    if kind == "city":
        fields["city"] = pick(rng, CITIES)
    elif kind == "job":
        fields["ajob"] = with_article(pick(rng, JOBS))
    elif kind == "pet":
        fields["species"], fields["pet"] = pick(rng, PET_SPECIES), pick(rng, PET_NAMES)
    elif kind == "hobby":
        fields["hobby"] = pick(rng, HOBBIES)
    elif kind == "food":
        fields["food"] = pick(rng, FOODS)
    elif kind == "language":
        fields["lang"] = pick(rng, LANGUAGES)
    else:
        ev = pick(rng, EVENTS)
        when = past_time(rng, anchor, rel_rate, "day")
        fields["past"], fields["time"] = ev.past, when.expression
        meta["time_expressions"] = [_time_meta(when)]
    if ("{n}" in template or "{N}" in template) and n not in mentioned:
        mentioned.append(n)
    return template.format(**fields), meta


def _new_value(rng, pool: list[str], exclude) -> str | None:
    choices = [v for v in pool if v not in exclude]
    return pick(rng, choices) if choices else None


def _speak(rng, f: Fact, step: Step, anchor: dt.date, rel_rate: float, history, person_values, story):
    """Apply `step` to fact `f` and say it. Returns (text, mentions, time ref said, record fields) or None
    when the step cannot happen (the fact is not alive, or no new value is left)."""
    kind = step.kind
    if (kind == "introduce") == f.alive:
        return None
    a = f.attr
    tkind = f.kind if f.kind != "attr" else a
    templates = T[tkind][kind]
    old_value, old_when = f.value, f.when
    when_said: TimeRef | None = None
    fields: dict = {}
    if f.kind == "attr":
        pool = VALUE_POOLS[a] if a not in RELATIONS else story.third_parties[:8]
        used = person_values.setdefault((f.owner, a), set())
        if kind == "introduce":
            value = f.first_value
            if value in used:
                value = _new_value(rng, pool, used)
                if value is None:
                    return None
            f.value = value
            used.add(value)
            history[step.fact] = [value]
        elif kind in ("change", "correct"):
            value = _new_value(rng, pool, set(history[step.fact]) | used)
            if value is None:
                return None
            used.discard(old_value)
            used.add(value)
            f.value = value
            history[step.fact].append(value)
            f.detail = None if kind == "change" else f.detail  # a new city/job has no neighbourhood yet
        elif kind == "refine":
            f.detail = pick(rng, {"city": NEIGHBORHOODS, "job": WORKPLACES, "language": LEARNING_MODES}.get(
                a) or BREEDS[f.sub])
        elif kind == "retract":
            used.discard(f.value)
        v = f.value
        fields = {"v": v, "V": _cap(v), "av": with_article(v), "old": old_value, "aold": with_article(old_value) if old_value else "",
                  "d": f.detail, "sub": f.sub, "rel": RELATIONS.get(a, "")}
        mentions = [v]
    else:
        granularity = "month" if f.kind == "trip" else None
        if kind == "introduce":
            if f.kind == "plan":
                g = rng.choices(["day", "month", "year"], [0.3, 0.6, 0.1])[0]
                f.when = future_time(rng, anchor, rel_rate, g)
            else:
                g = granularity or rng.choices(["day", "month", "year"], [0.6, 0.3, 0.1])[0]
                f.when = past_time(rng, anchor, rel_rate, g)
            when_said = f.when
        elif kind == "change":  # plans are rescheduled relative to the session they are rescheduled in
            for _ in range(5):
                when = future_time(rng, anchor, rel_rate, rng.choices(["day", "month"], [0.4, 0.6])[0])
                if when.date != f.when.date:
                    break
            else:
                return None
            f.when = when_said = when
        elif kind == "correct":
            when = _shifted(rng, f.when, anchor)
            if when is None:
                return None
            f.when = when_said = when
        noun = _EVENTS[a].noun if f.kind == "event" else (_PLANS[a].noun if f.kind == "plan" else f.value)
        fields = {"past": f.value, "phrase": f.value, "noun": noun, "v": f.value, "dur": f.duration,
                  "time": when_said.expression if when_said else "",
                  "Time": _cap(when_said.expression) if when_said else "",
                  "old": _said(old_when) if old_when else ""}
        if kind == "introduce":
            mentions = [f.value] + ([f.duration] if f.kind == "trip" else [])
        else:
            mentions = [noun]
    if kind == "introduce":
        f.alive = True
    text = pick(rng, templates).format(**fields)
    record = {"value": f.value, "old_value": old_value if kind in ("change", "correct") else None,
              "detail": f.detail, "text": canonical(f), "when": f.when,
              "old_when": old_when if kind in ("change", "correct") and f.kind != "attr" else None}
    if kind in ("change", "correct") and f.kind == "attr":
        mentions = [f.value]
    if kind == "retract":
        f.alive = False
    return text, mentions, when_said, record


def _said(ref: TimeRef) -> str:
    """How a speaker names an earlier date when correcting it: "on 6 May", "in April"."""
    d = dt.date.fromisoformat(ref.date)
    if ref.granularity == "day":
        return f"on {d.day} {MONTHS[d.month - 1]}"
    if ref.granularity == "month":
        return f"in {MONTHS[d.month - 1]}"
    return f"in {d.year}"


def _shifted(rng, ref: TimeRef, anchor: dt.date) -> TimeRef | None:
    """A corrected date near the original one, said absolutely ("on 3 May", "in March") so that it does not
    depend on which session the correction happens in; past events stay in the past."""
    d = dt.date.fromisoformat(ref.date)
    if ref.granularity == "day":
        for _ in range(5):
            nd = d + dt.timedelta(days=pick(rng, [-3, -2, -1, 1, 2, 3]))
            if nd < anchor:
                return day_ref(nd, f"on {nd.day} {MONTHS[nd.month - 1]}")
        return None
    if ref.granularity == "month":
        for _ in range(5):
            nd = add_months(d, pick(rng, [-1, 1]))
            if nd < dt.date(anchor.year, anchor.month, 1):
                return month_ref(nd, f"in {MONTHS[nd.month - 1]}")
        return None
    return None
