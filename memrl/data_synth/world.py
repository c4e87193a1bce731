"""The synthetic world: people, what can be true about them, and the story of how those facts evolve.

A conversation's world is a handful of *facts* per speaker. Each fact has a stable key ("Ana/city",
"Ana/pet:dog", "Ana/event:half_marathon", "Ana/plan:trip_to_kyoto"), an owner (the speaker it is about) and
a lifecycle of *steps* spread over the sessions:

    introduce -> [correct] -> {repeat, refine, change}* -> [retract]

`plan_story` decides which steps happen and in which session; `render.render_dialogue` then turns each step
into an utterance (sampling the new values and dates at that moment) and records what became true.

Why value pools and not free text: every value must be checkable (the tests look for it in the evidence
turn, in the gold memory text and in the answer), and the pools are disjoint across attributes so that a
value names its attribute unambiguously.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

from memrl.data_synth.config import SynthConfig

# ---- people -------------------------------------------------------------------------------------------
# Speakers and third parties (relatives, friends in distractors, unknown people in adversarial questions)
# come from disjoint pools so that a third party never shares a name with a speaker.
SPEAKER_NAMES = [
    "Ana", "Ben", "Chloe", "Daniel", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Keiko", "Liam",
    "Maya", "Nadia", "Omar", "Priya", "Quentin", "Rosa", "Samir", "Tara", "Ulrich", "Vera", "Wes", "Yara",
    "Zoe", "Aaron", "Bianca", "Carlos", "Dalia", "Emil", "Fatima", "Gabriel", "Hana", "Ivan", "Julia",
    "Kofi", "Lena", "Marco", "Nora", "Oscar", "Paula", "Rafael", "Sofia", "Tomas", "Uma", "Victor", "Wanda",
    "Xavier", "Yusuf", "Zara",
]
OTHER_NAMES = [
    "Aiden", "Beatrice", "Caleb", "Delphine", "Edgar", "Freya", "Gustav", "Harriet", "Isaac", "Jasmine",
    "Kasper", "Leonora", "Magnus", "Nell", "Orson", "Petra", "Reuben", "Selma", "Tobias", "Ursula", "Vince",
    "Winnie", "Yolanda", "Zeke", "Agnes", "Bruno", "Cora", "Dmitri", "Elsie", "Felix", "Greta", "Hector",
    "Ida", "Jude", "Klara", "Lorenzo", "Mabel", "Nico", "Odette", "Pablo", "Rhea", "Stellan", "Thea",
    "Umberto", "Viola", "Walter", "Ximena", "Yosef", "Zelda", "Arlo",
]

# ---- value pools (disjoint across attributes) ----------------------------------------------------------
CITIES = [
    "Porto", "Lisbon", "Oslo", "Bergen", "Kyoto", "Osaka", "Lyon", "Marseille", "Seville", "Valencia",
    "Krakow", "Gdansk", "Tallinn", "Riga", "Dublin", "Galway", "Edinburgh", "Glasgow", "Vienna", "Graz",
    "Zurich", "Geneva", "Prague", "Brno", "Budapest", "Ljubljana", "Athens", "Thessaloniki", "Montreal",
    "Vancouver", "Denver", "Austin", "Portland", "Melbourne", "Adelaide", "Auckland", "Wellington",
    "Nairobi", "Accra", "Lima",
]
NEIGHBORHOODS = ["the old town", "the university district", "the waterfront area", "the city center",
                 "a quiet suburb", "the north side", "the east end", "a village just outside town"]
JOBS = [
    "nurse", "architect", "teacher", "software engineer", "chef", "accountant", "photographer", "pharmacist",
    "electrician", "journalist", "graphic designer", "veterinarian", "librarian", "dentist", "firefighter",
    "barista", "lawyer", "physiotherapist", "data analyst", "carpenter", "pilot", "translator", "plumber",
    "florist",
]
WORKPLACES = ["a family-run business", "a large international company", "a small startup",
              "a nonprofit organization", "the local council", "a consulting firm", "a research institute"]
PET_SPECIES = ["dog", "cat", "rabbit", "parrot", "hamster", "turtle", "horse", "ferret"]
PET_NAMES = [
    "Rex", "Luna", "Milo", "Bella", "Coco", "Max", "Daisy", "Oliver", "Pepper", "Ziggy", "Biscuit", "Nala",
    "Rocky", "Mochi", "Simba", "Olive", "Waffles", "Pickle", "Juno", "Toffee", "Bruno", "Sprout", "Noodle",
    "Peanut",
]
BREEDS = {
    "dog": ["beagle", "golden retriever", "border collie", "dachshund", "labrador", "poodle", "husky", "corgi"],
    "cat": ["siamese", "maine coon", "tabby", "persian", "bengal", "ragdoll"],
}
HOBBIES = [
    "pottery", "rock climbing", "painting", "chess", "gardening", "knitting", "photography", "salsa dancing",
    "surfing", "birdwatching", "baking bread", "cycling", "yoga", "woodworking", "kayaking", "calligraphy",
    "archery", "fencing", "origami", "skateboarding",
]
FOODS = ["sushi", "lasagna", "ramen", "tacos", "pad thai", "paella", "curry", "dumplings", "pizza", "falafel",
         "pho", "risotto", "pierogi", "shakshuka", "bibimbap", "moussaka"]
MUSIC = ["jazz", "reggae", "k-pop", "classical music", "heavy metal", "bluegrass", "techno", "folk music",
         "opera", "hip hop", "blues", "salsa music"]
LANGUAGES = ["Japanese", "Spanish", "Italian", "Korean", "Portuguese", "German", "Arabic", "Swahili",
             "Greek", "Mandarin", "Turkish", "Dutch"]
LEARNING_MODES = ["through evening classes", "with a private tutor", "with an app", "at a language exchange",
                  "with an online course"]
DIETS = ["vegetarian", "vegan", "pescatarian", "gluten-free"]
VEHICLES = ["red hatchback", "blue pickup truck", "vintage Beetle", "silver minivan", "black motorbike",
            "green electric car", "white camper van", "yellow scooter"]
INSTRUMENTS = ["piano", "violin", "cello", "drums", "saxophone", "ukulele", "trumpet", "harp", "flute",
               "bass guitar"]
RELATIONS = {"sister": "sister", "brother": "brother", "best_friend": "best friend", "partner": "partner"}


@dataclass(frozen=True)
class Attribute:
    """What can happen to a fact of this kind (a world rule, not a rendering choice)."""

    name: str
    multi: bool = False  # several facts per person, one entry each, keyed by `sub` (pets by species ...)
    change: bool = False  # the value can be replaced (moves, new jobs, preference changes)
    end: bool = False  # the fact can stop being true (quit, gave up, passed away) -> DELETE
    refine: bool = False  # a detail can be added later (neighbourhood, workplace, breed) -> UPDATE
    correct: bool = True  # the speaker can misspeak and correct the value -> UPDATE


ATTRIBUTES: dict[str, Attribute] = {a.name: a for a in [
    Attribute("city", change=True, refine=True),
    Attribute("job", change=True, end=True, refine=True),
    Attribute("pet", multi=True, end=True, refine=True),
    Attribute("hobby", multi=True, end=True, correct=False),
    Attribute("food", change=True),
    Attribute("music", change=True),
    Attribute("sister"),
    Attribute("brother"),
    Attribute("best_friend"),
    Attribute("partner", end=True),
    Attribute("language", change=True, end=True, refine=True),
    Attribute("diet", change=True, end=True),
    Attribute("vehicle", change=True, end=True),
    Attribute("instrument", change=True, end=True),
]}
VALUE_POOLS: dict[str, list[str]] = {
    "city": CITIES, "job": JOBS, "pet": PET_NAMES, "hobby": HOBBIES, "food": FOODS, "music": MUSIC,
    "sister": OTHER_NAMES, "brother": OTHER_NAMES, "best_friend": OTHER_NAMES, "partner": OTHER_NAMES,
    "language": LANGUAGES, "diet": DIETS, "vehicle": VEHICLES, "instrument": INSTRUMENTS,
}


@dataclass(frozen=True)
class EventKind:
    """A past event: `past` for the speaker's utterance and the memory text, `base` for questions."""

    slug: str
    past: str  # "ran a half marathon"
    base: str  # "run a half marathon"  ("When did Ana run a half marathon?")
    noun: str  # "half marathon"        ("Ana's half marathon", "the half marathon")


EVENTS = [
    EventKind("half_marathon", "ran a half marathon", "run a half marathon", "half marathon"),
    EventKind("wedding", "went to a friend's wedding", "go to a friend's wedding", "wedding"),
    EventKind("jazz_concert", "went to a jazz concert", "go to a jazz concert", "jazz concert"),
    EventKind("cooking_class", "took a cooking class", "take a cooking class", "cooking class"),
    EventKind("camping", "went camping by a lake", "go camping by a lake", "camping trip"),
    EventKind("shelter", "volunteered at an animal shelter", "volunteer at an animal shelter",
              "shelter volunteering day"),
    EventKind("dinner_party", "hosted a dinner party", "host a dinner party", "dinner party"),
    EventKind("skydiving", "went skydiving", "go skydiving", "skydiving jump"),
    EventKind("bake_sale", "ran a charity bake sale", "run a charity bake sale", "bake sale"),
    EventKind("comedy_show", "saw a stand-up comedy show", "see a stand-up comedy show", "comedy show"),
    EventKind("waterfall_hike", "hiked to a waterfall", "hike to a waterfall", "waterfall hike"),
    EventKind("museum", "visited the science museum", "visit the science museum", "museum visit"),
    EventKind("race_10k", "finished a 10k race", "finish a 10k race", "10k race"),
    EventKind("art_exhibition", "went to an art exhibition", "go to an art exhibition", "art exhibition"),
    EventKind("graduation", "attended a graduation ceremony", "attend a graduation ceremony",
              "graduation ceremony"),
    EventKind("escape_room", "did an escape room", "do an escape room", "escape room"),
    EventKind("wine_tasting", "went to a wine tasting", "go to a wine tasting", "wine tasting"),
    EventKind("beach_cleanup", "joined a beach cleanup", "join a beach cleanup", "beach cleanup"),
]
TRIP_DURATIONS = ["three days", "five days", "one week", "ten days", "two weeks", "three weeks", "one month"]


@dataclass(frozen=True)
class PlanKind:
    slug: str
    phrase: str  # "renovate the kitchen" ("Ana plans to renovate the kitchen in June 2023")
    noun: str  # "kitchen renovation"


PLANS = [
    PlanKind("kitchen", "renovate the kitchen", "kitchen renovation"),
    PlanKind("marathon", "run a full marathon", "full marathon"),
    PlanKind("housewarming", "throw a housewarming party", "housewarming party"),
    PlanKind("cruise", "go on a cruise", "cruise"),
    PlanKind("sailing", "take a sailing course", "sailing course"),
    PlanKind("garden", "plant a vegetable garden", "vegetable garden"),
    PlanKind("road_trip", "go on a road trip along the coast", "road trip"),
    PlanKind("ski", "go skiing in the mountains", "ski trip"),
]


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")


# ---- facts and their lifecycle ------------------------------------------------------------------------
@dataclass
class Fact:
    """One memorable thing about a speaker. Mutable: `render` updates it as steps are spoken."""

    key: str
    owner: str
    kind: str  # "attr" | "event" | "plan" | "trip"
    attr: str  # attribute name, or the event / plan slug
    sub: str | None = None  # pet species, hobby slug, trip city: what distinguishes facts of one attribute
    value: str | None = None  # current value (name, city, job ...); for events/plans/trips: the phrase
    detail: str | None = None  # refinement (neighbourhood, workplace, breed, learning mode)
    when: TimeRef | None = None  # events/plans/trips: when it happens
    duration: str | None = None  # trips only
    alive: bool = False  # introduced and not retracted
    first_value: str | None = None  # what `plan_story` chose for the introduction


@dataclass(frozen=True)
class TimeRef:
    """A resolved time: the first day of the period, its granularity, and the words that expressed it."""

    date: str  # ISO date "2023-05-06" (first day of the month / year for coarser granularities)
    granularity: str  # "day" | "month" | "year"
    expression: str  # "last Tuesday", "next month", "on 3 May", ...


@dataclass
class Step:
    fact: int  # index into the speaker's fact list
    order: int  # position in the fact's lifecycle (0 = introduce)
    kind: str  # introduce | repeat | refine | change | correct | retract
    session: int  # planned session (0-based); the scheduler may move it later


@dataclass
class Story:
    """Everything `plan_story` decides before rendering."""

    speakers: list[str]
    facts: list[Fact]
    steps: list[Step]  # in lifecycle order per fact
    session_dates: list[str]  # ISO datetimes, chronological
    third_parties: list[str]  # names used for relatives and distractors in this conversation
    relatives: dict[str, str] = field(default_factory=dict)  # fact key -> relative's name (sister, ...)


def plan_story(rng: random.Random, cfg: SynthConfig, num_sessions: int, start: dt.date) -> Story:
    """Choose speakers, facts and the session of every lifecycle step. See module docstring."""
    speakers = rng.sample(SPEAKER_NAMES, cfg.speakers)
    # Session timestamps: gaps in whole days, so "the end of a session's day" always precedes the next
    # session (mid-conversation questions are asked then).
    dates: list[str] = []
    day = start
    for i in range(num_sessions):
        if i:
            day = day + dt.timedelta(days=rng.randint(cfg.session_gap_days[0], cfg.session_gap_days[1]))
        hour, minute = rng.randint(8, 21), rng.randint(0, 59)
        dates.append(f"{day.isoformat()}T{hour:02d}:{minute:02d}:00")

    third = rng.sample(OTHER_NAMES, 12)
    facts: list[Fact] = []
    steps: list[Step] = []
    relatives: dict[str, str] = {}
    last = num_sessions - 1
    used_trip_cities: set[str] = set()
    for person in speakers:
        n_attr = rng.randint(*cfg.facts_per_speaker)
        n_events = rng.randint(*cfg.events_per_speaker)
        n_plans = rng.randint(*cfg.plans_per_speaker)
        person_facts = _choose_attribute_facts(rng, person, n_attr, third, relatives)
        for kind in rng.sample(EVENTS, min(n_events, len(EVENTS))):
            person_facts.append(Fact(f"{person}/event:{kind.slug}", person, "event", kind.slug,
                                     value=kind.past))
        if n_events and rng.random() < 0.5:  # one trip per person at most: trips carry a duration
            home = {f.first_value for f in person_facts if f.attr == "city"}
            city = rng.choice([c for c in CITIES if c not in used_trip_cities and c not in home])
            used_trip_cities.add(city)
            person_facts.append(Fact(f"{person}/event:trip_to_{slug(city)}", person, "trip", "trip", sub=city,
                                     value=city, duration=rng.choice(TRIP_DURATIONS)))
        for kind in rng.sample(PLANS, min(n_plans, len(PLANS))):
            person_facts.append(Fact(f"{person}/plan:{kind.slug}", person, "plan", kind.slug, value=kind.phrase))
        for fact in person_facts:
            steps.extend(_lifecycle(rng, cfg, len(facts), fact, last))
            facts.append(fact)
    return Story(speakers, facts, steps, dates, third, relatives)


def _choose_attribute_facts(rng, person, n, third_parties, relatives) -> list[Fact]:
    names = list(ATTRIBUTES)
    out: list[Fact] = []
    taken: dict[str, int] = {}
    used_values: set[str] = set()
    for _ in range(n * 3):  # draws with rejection; multi attributes may be drawn several times
        if len(out) >= n:
            break
        attr = ATTRIBUTES[rng.choice(names)]
        if taken.get(attr.name, 0) >= (3 if attr.multi else 1):
            continue
        if attr.name == "pet":
            species = rng.choice([s for s in PET_SPECIES if f"{person}/pet:{s}" not in {f.key for f in out}])
            value = rng.choice([v for v in PET_NAMES if v not in used_values])
            fact = Fact(f"{person}/pet:{species}", person, "attr", "pet", sub=species, first_value=value)
        elif attr.name == "hobby":
            value = rng.choice([v for v in HOBBIES if v not in used_values])
            fact = Fact(f"{person}/hobby:{slug(value)}", person, "attr", "hobby", sub=slug(value), first_value=value)
        else:
            pool = third_parties[:8] if attr.name in RELATIONS else VALUE_POOLS[attr.name]
            value = rng.choice([v for v in pool if v not in used_values])
            fact = Fact(f"{person}/{attr.name}", person, "attr", attr.name, first_value=value)
            if attr.name in RELATIONS:
                relatives[fact.key] = value
        used_values.add(value)
        taken[attr.name] = taken.get(attr.name, 0) + 1
        out.append(fact)
    return out


def _lifecycle(rng: random.Random, cfg: SynthConfig, index: int, fact: Fact, last: int) -> list[Step]:
    """Sample which steps a fact goes through and their sessions (non-decreasing).

    Rates are per fact: `change_rate` 0.3 means 30% of changeable facts change at least once.
    Introductions fall in the first 70% of the conversation so that later steps have room.
    """
    if fact.kind == "attr":
        spec = ATTRIBUTES[fact.attr]
        can = {"change": spec.change, "end": spec.end, "refine": spec.refine and
               (fact.attr != "pet" or fact.sub in BREEDS), "correct": spec.correct}
    elif fact.kind == "plan":
        can = {"change": True, "end": True, "refine": False, "correct": False}
    else:  # events and trips: a date can be misremembered and corrected, nothing else changes
        can = {"change": False, "end": False, "refine": False, "correct": True}
    s0 = rng.randint(0, int(0.7 * last))
    kinds = []
    if can["correct"] and rng.random() < cfg.correct_rate:
        kinds.append("correct")
    middle = []
    if rng.random() < cfg.repeat_rate:
        middle.append("repeat")
    if can["refine"] and rng.random() < cfg.refine_rate:
        middle.append("refine")
    if can["change"] and rng.random() < cfg.change_rate:
        middle.append("change")
        if rng.random() < cfg.change_rate:
            middle.append("change")
    rng.shuffle(middle)
    kinds += middle
    if can["end"] and rng.random() < cfg.retract_rate:
        kinds.append("retract")
    steps = [Step(index, 0, "introduce", s0)]
    session = s0
    for order, kind in enumerate(kinds, 1):
        if kind == "correct":
            session = min(last, session + rng.randint(0, 1))  # people correct themselves soon
        elif kind in ("change", "retract"):
            if session >= last:
                break  # no later session left for a change of state: drop it and what follows
            session = rng.randint(session + 1, min(last, session + max(2, last // 3)))
        else:
            session = rng.randint(session, min(last, session + max(2, last // 3)))
        steps.append(Step(index, order, kind, session))
    return steps
