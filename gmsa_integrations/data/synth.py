"""A fictional world to learn from: people, organizations and places, described in encyclopedia-style
passages and queried by single-hop and two-hop questions.

Everything is deterministic given a seed. Names are built from syllables; the test split uses name
parts never seen in training, so answers can only come from the context. ``gmsa data synth`` writes
``train/validation/test`` JSON Lines in the training formats (``ae_*.jsonl`` rows ``{"text"}``,
``qa_*.jsonl`` rows ``{"question", "answers", "passages"}``) plus a retrieval ``corpus.jsonl``.
"""

from __future__ import annotations

import functools
import itertools
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
FIELDS = [
    "marine biology",
    "economics",
    "civil engineering",
    "medieval history",
    "organic chemistry",
    "linguistics",
    "astronomy",
    "architecture",
    "mathematics",
    "geology",
    "philosophy",
    "computer science",
    "agronomy",
    "oceanography",
    "music theory",
    "public health",
    "botany",
    "statistics",
    "political science",
    "metallurgy",
]
TITLES = [
    "chief engineer",
    "research director",
    "senior analyst",
    "head of design",
    "project manager",
    "chief financial officer",
    "lead chemist",
    "operations manager",
    "staff scientist",
    "legal counsel",
    "marketing director",
    "product designer",
    "field geologist",
    "software architect",
    "quality inspector",
]
INDUSTRIES = {
    "Tools": "hardware",
    "Shipping": "shipping",
    "Textiles": "textiles",
    "Labs": "biotechnology",
    "Foods": "food processing",
    "Motors": "automotive",
    "Energy": "energy",
    "Press": "publishing",
    "Robotics": "robotics",
    "Pharma": "pharmaceuticals",
    "Aero": "aerospace",
    "Mining": "mining",
}
PLACE_SUFFIXES = ["port", "holm", "by", "ford", "stad", "wick", "mere", "dale", "burg", "haven"]
LANDMARKS = ["Tower", "Bridge", "Gate", "Cathedral", "Lighthouse", "Observatory", "Fortress", "Library"]
CONSONANTS = "bdfgklmnprstvz"
VOWELS = "aeiou"
OPENERS = ["", "According to local records, ", "Notably, ", "As the archives show, "]
# Filler sentences carry no asked-about fact; each kind gets sentences that make sense for it.
_PLACE_FILLERS = [
    "The town of {city} hosts a small festival every summer.",
    "Visitors to {city} often mention its narrow streets.",
    "A short profile of {city} appeared in a regional newspaper.",
]
_ORG_FILLERS = [
    "{org} publishes an annual report each spring.",
    "{org} has offices on three floors of its main building.",
    "A short profile of {org} appeared in a regional newspaper.",
]
FILLERS: dict[str, list[str]] = {
    "person": [
        "{name} is known among colleagues for a dry sense of humour.",
        "Several letters written by {name} are kept in a private collection.",
        "{name} rarely gives interviews.",
        "A short profile of {name} appeared in a regional newspaper.",
        *_PLACE_FILLERS[:2],
        *_ORG_FILLERS[:2],
    ],
    "org": [*_ORG_FILLERS, *_PLACE_FILLERS[:2]],
    "place": _PLACE_FILLERS,
}

# Predicate phrasings per fact type; with the four openers each gives >= 32 templates.
PERSON_FACTS: dict[str, list[str]] = {
    "birth_date": [
        "{name} was born on {birth_date}.",
        "{name}'s date of birth is {birth_date}.",
        "{name} came into the world on {birth_date}.",
        "The birth of {name} took place on {birth_date}.",
        "{name} was born on the date {birth_date}.",
        "Born on {birth_date}, {name} grew up quickly.",
        "{birth_date} is the birthday of {name}.",
        "Records give {birth_date} as the birth date of {name}.",
    ],
    "birth_city": [
        "{name} was born in {birth_city}.",
        "{name} is a native of {birth_city}.",
        "The birthplace of {name} is {birth_city}.",
        "{name} was born in the town of {birth_city}.",
        "{birth_city} is where {name} was born.",
        "{name} comes from {birth_city}, where {name} was born.",
        "Born in {birth_city}, {name} spent a childhood there.",
        "{name}'s hometown is {birth_city}.",
    ],
    "field": [
        "{name} studied {field}.",
        "{name} holds a degree in {field}.",
        "{name} trained in {field}.",
        "The field of study of {name} is {field}.",
        "At university, {name} specialised in {field}.",
        "{name} earned a diploma in {field}.",
        "The subject {name} studied is {field}.",
        "{name} graduated in {field}.",
    ],
    "employer": [
        "{name} works for {employer}.",
        "{name} is employed by {employer}.",
        "The employer of {name} is {employer}.",
        "{name} has a job at {employer}.",
        "{employer} employs {name}.",
        "{name} joined {employer} and still works there.",
        "{name} is on the staff of {employer}.",
        "Today {name} works at {employer}.",
    ],
    "title": [
        "{name} is a {title}.",
        "{name} works as a {title}.",
        "The job title of {name} is {title}.",
        "{name} holds the position of {title}.",
        "{name} serves as {title}.",
        "{name}'s current role is {title}.",
        "By profession, {name} is a {title}.",
        "{name} was appointed {title}.",
    ],
}
ORG_FACTS: dict[str, list[str]] = {
    "founded": [
        "{name} was founded in {founded}.",
        "{name} was established in {founded}.",
        "The founding year of {name} is {founded}.",
        "{name} dates back to {founded}.",
        "{name} opened its doors in {founded}.",
        "In {founded}, {name} was set up.",
        "{name} has existed since {founded}.",
        "{name} began operating in {founded}.",
    ],
    "founder": [
        "{name} was founded by {founder}.",
        "The founder of {name} is {founder}.",
        "{founder} founded {name}.",
        "{name} was started by {founder}.",
        "{founder} established {name}.",
        "{name} owes its existence to its founder, {founder}.",
        "{name} was created by {founder}.",
        "It was {founder} who set up {name}.",
    ],
    "hq": [
        "{name} is headquartered in {hq}.",
        "The headquarters of {name} are in {hq}.",
        "{name} has its head office in {hq}.",
        "{name} is based in {hq}.",
        "{hq} is home to {name}.",
        "The main office of {name} is located in {hq}.",
        "{name} runs its business from {hq}.",
        "{name} keeps its headquarters in {hq}.",
    ],
    "industry": [
        "{name} works in the {industry} industry.",
        "{name} is a {industry} company.",
        "The industry of {name} is {industry}.",
        "{name} operates in {industry}.",
        "{name} makes its money in {industry}.",
        "{name} belongs to the {industry} sector.",
        "{name} is active in the {industry} business.",
        "The trade of {name} is {industry}.",
    ],
}
PLACE_FACTS: dict[str, list[str]] = {
    "country": [
        "{name} is a town in {country}.",
        "{name} lies in {country}.",
        "{name} is located in {country}.",
        "{name} belongs to {country}.",
        "{country} is the country of {name}.",
        "{name} is part of {country}.",
        "{name} is situated in {country}.",
        "{name} is found in {country}.",
    ],
    "population": [
        "{name} has a population of {population}.",
        "{name} is home to {population} people.",
        "About {population} people live in {name}.",
        "The population of {name} is {population}.",
        "{name} counts {population} inhabitants.",
        "{population} residents live in {name}.",
        "The census puts {name} at {population} people.",
        "{name} has {population} inhabitants.",
    ],
    "river": [
        "{name} lies on the {river}.",
        "The {river} flows through {name}.",
        "{name} is built on the {river}.",
        "The river of {name} is the {river}.",
        "{name} sits on the banks of the {river}.",
        "The {river} runs past {name}.",
        "{name} grew up along the {river}.",
        "{name} stands by the {river}.",
    ],
    "landmark": [
        "{name} is known for the {landmark}.",
        "The best-known landmark of {name} is the {landmark}.",
        "The {landmark} stands in {name}.",
        "{name} is famous for its {landmark}.",
        "Visitors to {name} come to see the {landmark}.",
        "The {landmark} is the symbol of {name}.",
        "{name} is home to the {landmark}.",
        "The {landmark} is found in {name}.",
    ],
}

QUESTIONS: dict[str, list[str]] = {
    "birth_date": [
        "When was {name} born?",
        "What is the date of birth of {name}?",
        "On what date was {name} born?",
        "What is {name}'s birthday?",
    ],
    "birth_city": [
        "Where was {name} born?",
        "In which city was {name} born?",
        "What is the birthplace of {name}?",
        "Which town is {name} from?",
    ],
    "field": [
        "What did {name} study?",
        "What is {name}'s field of study?",
        "In which field did {name} graduate?",
        "What subject did {name} study?",
    ],
    "employer": [
        "Who employs {name}?",
        "Where does {name} work?",
        "Which company does {name} work for?",
        "What is the employer of {name}?",
    ],
    "title": [
        "What is the job title of {name}?",
        "What position does {name} hold?",
        "What is {name}'s job?",
        "What does {name} work as?",
    ],
    "founded": [
        "When was {name} founded?",
        "In what year was {name} established?",
        "What is the founding year of {name}?",
        "Since when has {name} existed?",
    ],
    "founder": [
        "Who founded {name}?",
        "Who is the founder of {name}?",
        "Who established {name}?",
        "Who started {name}?",
    ],
    "hq": [
        "Where is {name} headquartered?",
        "In which city is {name} based?",
        "Where are the headquarters of {name}?",
        "Where is the head office of {name}?",
    ],
    "industry": [
        "What industry is {name} in?",
        "In which sector does {name} operate?",
        "What kind of company is {name}?",
        "What business is {name} in?",
    ],
    "country": [
        "In which country is {name}?",
        "Which country is {name} in?",
        "Where is {name} located?",
        "What country does {name} belong to?",
    ],
    "population": [
        "What is the population of {name}?",
        "How many people live in {name}?",
        "How many inhabitants does {name} have?",
        "What is the number of residents of {name}?",
    ],
    "river": [
        "Which river flows through {name}?",
        "On which river does {name} lie?",
        "What is the river of {name}?",
        "Which river runs past {name}?",
    ],
    "landmark": [
        "What is {name} known for?",
        "What is the best-known landmark of {name}?",
        "Which landmark stands in {name}?",
        "What is the symbol of {name}?",
    ],
}
TWO_HOP: dict[str, list[str]] = {
    "employer.hq": [
        "In which city is the employer of {name} headquartered?",
        "Where is {name}'s employer based?",
        "In which city is the company that employs {name} based?",
    ],
    "employer.founder": ["Who founded the company that employs {name}?", "Who is the founder of {name}'s employer?"],
    "employer.industry": [
        "What industry is the employer of {name} in?",
        "In which sector does {name}'s employer work?",
    ],
    "birth_city.country": ["In which country was {name} born?", "Which country is the birthplace of {name} in?"],
    "birth_city.river": [
        "Which river flows through the birthplace of {name}?",
        "On which river lies the town where {name} was born?",
    ],
    "hq.country": ["In which country is {name} headquartered?", "Which country is the home of {name}'s head office?"],
}


def templates_per_fact() -> dict[str, int]:
    """Number of distinct sentence templates for each fact type (openers x phrasings)."""
    facts = {**PERSON_FACTS, **ORG_FACTS, **PLACE_FACTS}
    return {fact: len(OPENERS) * len(phrasings) for fact, phrasings in facts.items()}


@dataclass
class Entity:
    kind: str
    name: str
    facts: dict[str, str]
    links: dict[str, Entity] = field(default_factory=dict, repr=False)


class NameMaker:
    """Compositional names from syllables; ``held_out`` selects disjoint syllable pools for the test split."""

    def __init__(self, rng: random.Random, held_out: bool) -> None:
        syllables = sorted(c + v for c, v in itertools.product(CONSONANTS, VOWELS))
        syllables += sorted(c + v + e for c, v, e in itertools.product("kmnrst", VOWELS, "lnr"))
        pool = random.Random(1234).sample(syllables, len(syllables))  # fixed split, independent of the seed
        cut = len(pool) * 4 // 5
        self.syllables = pool[cut:] if held_out else pool[:cut]
        self.rng = rng
        self.used: set[str] = set()

    def _word(self, parts: int) -> str:
        return "".join(self.rng.choice(self.syllables) for _ in range(parts)).capitalize()

    def unique(self, make: Callable[[], str]) -> str:
        for _ in range(1000):
            name = make()
            if name not in self.used:
                self.used.add(name)
                return name
        raise RuntimeError("name space exhausted; generate a smaller world")

    def person(self) -> str:
        return self.unique(lambda: f"{self._word(2)} {self._word(self.rng.choice([2, 3]))}")

    def place(self) -> str:
        return self.unique(lambda: self._word(self.rng.choice([1, 2])) + self.rng.choice(PLACE_SUFFIXES))

    def word(self) -> str:
        return self.unique(lambda: self._word(self.rng.choice([2, 3])))


@dataclass
class World:
    people: list[Entity]
    orgs: list[Entity]
    places: list[Entity]
    passages: dict[str, str]  # entity name -> passage


def build_world(seed: int, *, held_out: bool, people: int = 120, orgs: int = 40, places: int = 30) -> World:
    rng = random.Random(seed)
    names = NameMaker(rng, held_out)
    countries = [names.word() for _ in range(max(3, places // 5))]
    place_list = []
    for _ in range(places):
        facts = {
            "country": rng.choice(countries),
            "population": f"{rng.randint(2, 900) * 1000:,}",
            "river": f"{names.word()} River",
            "landmark": f"{names.word()} {rng.choice(LANDMARKS)}",
        }
        place_list.append(Entity("place", names.place(), facts))
    founders = [names.person() for _ in range(orgs)]
    org_list = []
    for i in range(orgs):
        suffix = rng.choice(sorted(INDUSTRIES))
        hq = rng.choice(place_list)
        facts = {
            "founded": str(rng.randint(1850, 2015)),
            "founder": founders[i],
            "hq": hq.name,
            "industry": INDUSTRIES[suffix],
        }
        org_list.append(Entity("org", f"{names.word()} {suffix}", facts, {"hq": hq}))
    person_list = []
    for _ in range(people):
        city, employer = rng.choice(place_list), rng.choice(org_list)
        day, month, year = rng.randint(1, 28), rng.choice(MONTHS), rng.randint(1940, 2002)
        facts = {
            "birth_date": f"{day} {month} {year}",
            "birth_city": city.name,
            "field": rng.choice(FIELDS),
            "employer": employer.name,
            "title": rng.choice(TITLES),
        }
        person_list.append(Entity("person", names.person(), facts, {"birth_city": city, "employer": employer}))
    world = World(person_list, org_list, place_list, {})
    for entity in [*place_list, *org_list, *person_list]:
        world.passages[entity.name] = write_passage(entity, rng)
    return world


def write_passage(entity: Entity, rng: random.Random) -> str:
    table = {"person": PERSON_FACTS, "org": ORG_FACTS, "place": PLACE_FACTS}[entity.kind]
    sentences = []
    for phrasings in table.values():
        opener, phrasing = rng.choice(OPENERS), rng.choice(phrasings)
        if opener and not phrasing.startswith("{"):
            phrasing = phrasing[0].lower() + phrasing[1:]  # "Notably, by profession, ..."
        sentence = (opener + phrasing).format(name=entity.name, **entity.facts)
        sentences.append(sentence[0].upper() + sentence[1:])
    rng.shuffle(sentences)
    insert_fillers(sentences, entity, rng)
    return " ".join(sentences)


def insert_fillers(sentences: list[str], entity: Entity, rng: random.Random) -> None:
    """Put up to two sentences that state no asked-about fact between the passage's sentences."""
    filler_city = entity.facts.get("birth_city") or entity.facts.get("hq") or entity.name
    filler_org = entity.facts.get("employer") or entity.name
    for _ in range(rng.randint(0, 2)):
        sentences.insert(
            rng.randint(1, len(sentences)),
            rng.choice(FILLERS[entity.kind]).format(name=entity.name, city=filler_city, org=filler_org),
        )


def questions_for(
    world: World,
    rng: random.Random,
    distractors: int = 2,
    questions: dict[str, list[str]] = QUESTIONS,
    two_hop: dict[str, list[str]] = TWO_HOP,
) -> list[dict]:
    """Single-hop questions for every fact, two-hop ones across passages, each with distractor passages;
    ``questions`` and ``two_hop`` are the wordings per fact type."""
    rows = []
    everyone = [*world.people, *world.orgs, *world.places]

    def row(question: str, answer: str, gold: list[Entity], kind: str) -> dict:
        others = [e for e in rng.sample(everyone, distractors + len(gold)) if e not in gold][:distractors]
        passages = [world.passages[e.name] for e in [*gold, *others]]
        rng.shuffle(passages)
        return {"question": question, "answers": [answer], "passages": passages, "type": kind}

    for entity in everyone:
        for fact, value in entity.facts.items():
            rows.append(row(rng.choice(questions[fact]).format(name=entity.name), value, [entity], fact))
    for person in world.people:
        for hop, wordings in two_hop.items():
            first, second = hop.split(".")
            if first not in person.links:
                continue
            middle = person.links[first]
            rows.append(row(rng.choice(wordings).format(name=person.name), middle.facts[second], [person, middle], hop))
    for org in world.orgs:
        middle = org.links["hq"]
        rows.append(
            row(
                rng.choice(two_hop["hq.country"]).format(name=org.name),
                middle.facts["country"],
                [org, middle],
                "hq.country",
            )
        )
    rng.shuffle(rows)
    return rows


def _write(path: Path, rows: list[dict]) -> None:
    from ..io import atomic_write_bytes

    atomic_write_bytes(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode())


STYLES = ("templated", "varied", "real-names")


def generate(
    out: str | Path,
    seed: int = 0,
    *,
    train_worlds: int = 6,
    scale: float = 1.0,
    distractors: int = 2,
    style: str = "templated",
) -> dict[str, int]:
    """Write the data set; returns row counts per file. ``scale`` multiplies the entities per world;
    ``distractors`` is the number of unrelated passages beside the gold ones in each training question
    (validation and test always have 2). ``style`` is ``templated`` (this module's world, which every
    shipped model up to v2.1 trained on) or ``varied`` (``synth_varied``: other name shapes, open values,
    pronouns, more question wordings) or ``real-names`` (the varied world with names from Faker's locales)."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}, not {style!r}")
    if style in ("varied", "real-names"):
        from . import synth_varied

        name_source = "real" if style == "real-names" else "syllables"
        build = functools.partial(synth_varied.build_world, name_source=name_source)
        questions, two_hop = synth_varied.QUESTIONS_VARIED, synth_varied.TWO_HOP_VARIED
    else:
        build, questions, two_hop = build_world, QUESTIONS, TWO_HOP
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = {k: max(3, int(v * scale)) for k, v in {"people": 120, "orgs": 40, "places": 30}.items()}
    splits = {
        "train": [build(seed * 1000 + i, held_out=False, **sizes) for i in range(train_worlds)],
        "validation": [build(seed * 1000 + 500, held_out=False, **sizes)],
        "test": [build(seed * 1000 + 900, held_out=True, **sizes)],
    }
    counts = {}
    corpus = []
    for split, worlds in splits.items():
        rng = random.Random(f"{seed}:{split}")
        ae = [{"text": text} for w in worlds for text in w.passages.values()]
        k = distractors if split == "train" else 2
        qa = [q for w in worlds for q in questions_for(w, rng, k, questions, two_hop)]
        rng.shuffle(ae)
        _write(out / f"ae_{split}.jsonl", ae)
        _write(out / f"qa_{split}.jsonl", qa)
        counts[f"ae_{split}"], counts[f"qa_{split}"] = len(ae), len(qa)
        if split == "test":
            for world in worlds:
                for kind, entities in (("person", world.people), ("org", world.orgs), ("place", world.places)):
                    corpus += [
                        {"id": f"{kind}-{i}", "title": e.name, "type": kind, "text": world.passages[e.name]}
                        for i, e in enumerate(entities)
                    ]
    _write(out / "corpus.jsonl", corpus)
    counts["corpus"] = len(corpus)
    return counts
