"""The synthetic world in a varied style (``gmsa data synth --style varied``).

The templated world (``synth.py``) draws names from one family of syllables, values from closed lists
(15 job titles, 20 fields, 12 industries that a company's name gives away) and states every fact in its
own sentence, always naming the subject. A compressor trained only on it learns those shapes: on text
written independently (other names, pronouns, open-ended values) it rewrites names into the world's own
suffixes and answers from its closed lists. This world keeps the same facts, entities and question types
but varies what the model must copy rather than recall:

- names from consonant clusters, vowel pairs and codas, with surname, place and company forms of many
  kinds (``Halvik``, ``Brenstad & Marrow``, ``Port Skeld``); the test split's name parts stay disjoint;
- open values: job titles, fields and industries composed from larger lists, dates in two formats,
  populations not rounded to thousands, rivers and landmarks in several forms;
- passages that name the subject first and then often use a pronoun, join two facts in one sentence, and
  drop the archival openers ("According to local records, ");
- more question wordings.

``name_source="real"`` (``gmsa data synth --style real-names``) takes the names of people, places and companies
from Faker's locales instead: real first names, surnames and towns of some thirty languages and company
forms with their legal suffixes (``Kjeldsen ApS``, ``Geisler Sp. z o.o.``), so that what the model learns to
copy is the spelling of names people actually have. The test split's locales are disjoint from training's.
Faker's lists change between its releases, so this style's output is reproducible for one Faker version
(``constraints.txt`` pins it).
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable

from .synth import (
    MONTHS,
    ORG_FACTS,
    PERSON_FACTS,
    PLACE_FACTS,
    QUESTIONS,
    TWO_HOP,
    Entity,
    World,
    insert_fillers,
)

ONSETS = ["", "b", "br", "ch", "d", "dr", "f", "fl", "g", "gr", "h", "j", "k", "kl", "l", "m", "n", "p", "pr"]
ONSETS += ["r", "s", "sh", "sk", "st", "t", "th", "tr", "v", "w", "z"]
NUCLEI = ["a", "e", "i", "o", "u", "ai", "ea", "ee", "ia", "io", "ou", "y"]
CODAS = ["", "", "n", "r", "l", "s", "k", "m", "nd", "rt", "ck", "st", "ll", "rn", "th", "x", "ng"]
FIRST_ENDINGS = ["", "", "a", "o", "e", "ia", "en", "us", "ine", "el"]
SURNAME_ENDINGS = ["", "", "sen", "son", "ez", "ova", "ski", "ley", "berg", "mann", "ini", "ard", "ton", "wood"]
PLACE_ENDINGS = ["port", "holm", "by", "ford", "stad", "wick", "mere", "dale", "burg", "haven", "water", "ton"]
PLACE_ENDINGS += ["vik", "field", "bridge", "minster", "ville", "ham", "worth", "stead", "mouth", "", "", ""]
PLACE_FORMS = ["{w}", "{w}", "{w}", "{w}", "Port {w}", "New {w}", "{w} Falls", "Upper {w}", "Saint {w}"]
ORG_SUFFIXES = ["Group", "Holdings", "& Sons", "Works", "Partners", "Company", "Ltd", "Industries", "Brothers"]
ORG_SUFFIXES += ["Associates", "Collective", "International", "Trust", "Studio", "Systems"]
INDUSTRIES = {  # industry -> words a company in it may carry in its name
    "hardware": ["Tools", "Hardware"],
    "shipping": ["Shipping", "Freight", "Lines"],
    "textiles": ["Textiles", "Weaving", "Mills"],
    "biotechnology": ["Labs", "Bio", "Genomics"],
    "food processing": ["Foods", "Kitchens", "Bakeries"],
    "automotive": ["Motors", "Automotive"],
    "energy": ["Energy", "Power"],
    "publishing": ["Press", "Books", "Publishing"],
    "robotics": ["Robotics", "Automation"],
    "pharmaceuticals": ["Pharma", "Pharmaceuticals", "Medicines"],
    "aerospace": ["Aero", "Aerospace"],
    "mining": ["Mining", "Minerals"],
    "insurance": ["Insurance", "Assurance"],
    "banking": ["Bank", "Savings"],
    "retail": ["Stores", "Markets"],
    "construction": ["Construction", "Builders"],
    "telecommunications": ["Telecom", "Networks"],
    "brewing": ["Breweries", "Brewing"],
    "furniture": ["Furniture", "Joinery"],
    "glassmaking": ["Glassworks", "Glass"],
    "medical devices": ["Medical", "Instruments"],
    "software": ["Software", "Digital"],
    "tourism": ["Travel", "Tours"],
    "consulting": ["Consulting", "Advisory"],
    "agriculture": ["Farms", "Agri"],
    "chemicals": ["Chemicals", "Chemical"],
    "shipbuilding": ["Shipyards", "Dockyards"],
    "logistics": ["Logistics", "Haulage"],
    "architecture": ["Architects", "Design"],
    "media": ["Media", "Broadcasting"],
}
LEVELS = ["", "", "senior", "junior", "chief", "lead", "principal", "assistant", "deputy", "regional"]
ROLES = ["engineer", "analyst", "accountant", "architect", "designer", "editor", "chemist", "economist"]
ROLES += ["surveyor", "buyer", "planner", "inspector", "technician", "developer", "consultant", "auditor"]
ROLES += ["pilot", "translator", "curator", "geologist", "statistician", "manager", "scientist", "counsel"]
DEPARTMENTS = ["research", "sales", "design", "finance", "marketing", "operations", "logistics", "quality"]
DEPARTMENTS += ["security", "procurement", "training", "compliance", "production", "customer service"]
SUBJECTS = ["biology", "history", "chemistry", "physics", "economics", "law", "engineering", "linguistics"]
SUBJECTS += ["geography", "mathematics", "philosophy", "statistics", "astronomy", "medicine", "music"]
SUBJECTS += ["architecture", "sociology", "psychology", "literature", "geology", "ecology", "nursing"]
SUBJECT_QUALIFIERS = ["", "", "", "marine", "applied", "ancient", "modern", "theoretical", "environmental"]
SUBJECT_QUALIFIERS += ["comparative", "industrial", "medieval", "computational", "structural", "social"]
LANDMARK_KINDS = ["Tower", "Bridge", "Gate", "Cathedral", "Lighthouse", "Observatory", "Fortress", "Library"]
LANDMARK_KINDS += ["Abbey", "Castle", "Clock", "Market Hall", "Museum", "Mill", "Theatre", "Fountain", "Light"]
LANDMARK_FORMS = ["{w} {k}", "{w} {k}", "Old {k}", "Saint {w}'s {k}", "{w} Memorial {k}"]
RIVER_FORMS = ["{w} River", "{w} River", "River {w}"]
DATE_FORMS = ["{d} {m} {y}", "{m} {d}, {y}"]

PERSON_EXTRA: dict[str, list[str]] = {
    "birth_date": ["{name} celebrates a birthday each year on {birth_date}, the day of birth."],
    "birth_city": ["{name} grew up in {birth_city}, the town of birth."],
    "field": ["{name} has a degree in {field}.", "{name} read {field} at university."],
    "employer": ["{name} has worked for {employer} for some years.", "{name} is with {employer}."],
    "title": ["{name} is employed as {title}.", "The role of {name} is {title}."],
}
# Two facts in one sentence: the pair is stated once, in place of the two single-fact sentences.
PERSON_PAIRS: dict[tuple[str, str], list[str]] = {
    ("birth_date", "birth_city"): [
        "{name} was born on {birth_date} in {birth_city}.",
        "Born in {birth_city} on {birth_date}, {name} grew up there.",
        "{name} was born in {birth_city} on {birth_date}.",
    ],
    ("title", "employer"): [
        "{name} works at {employer} as {title}.",
        "{name} is {title} at {employer}.",
        "At {employer}, {name} is {title}.",
    ],
}
ORG_PAIRS: dict[tuple[str, str], list[str]] = {
    ("founded", "founder"): [
        "{name} was founded in {founded} by {founder}.",
        "{founder} set up {name} in {founded}.",
        "In {founded}, {founder} founded {name}.",
    ],
}
PRONOUNS = {"he": ("He", "His"), "she": ("She", "Her"), "org": ("It", "Its"), "place": ("It", "Its")}
_A_BEFORE_VOWEL = re.compile(r"\b([Aa]) (?=[aeiou])")

_MORE_WORDINGS: dict[str, list[str]] = {
    "birth_date": ["{name} was born on what date?", "What day was {name} born?"],
    "birth_city": ["In which town was {name} born?", "{name} was born in which town?", "What is {name}'s hometown?"],
    "field": ["What did {name} get a degree in?", "Which subject did {name} read?"],
    "employer": ["{name} works for which company?", "Who is {name}'s employer?", "Name the employer of {name}."],
    "title": ["What is {name}'s role?", "What is {name}'s position?", "What does {name} do for a living?"],
    "founded": ["In what year was {name} founded?", "{name} was founded in which year?"],
    "founder": ["Who set up {name}?", "Name the founder of {name}."],
    "hq": ["In which town is {name} based?", "Where is {name}'s main office?"],
    "industry": ["What does {name} do?", "In which sector is {name}?"],
    "country": ["In which country is {name}?", "{name} lies in which country?"],
    "population": ["How large is the population of {name}?", "What is {name}'s population?"],
    "river": ["Name the river that flows through {name}.", "Which river does {name} lie on?"],
    "landmark": ["What is the best-known sight in {name}?", "What do visitors to {name} come to see?"],
}
QUESTIONS_VARIED: dict[str, list[str]] = {fact: [*QUESTIONS[fact], *_MORE_WORDINGS[fact]] for fact in QUESTIONS}
TWO_HOP_VARIED: dict[str, list[str]] = {
    "employer.hq": [*TWO_HOP["employer.hq"], "Where is {name}'s employer headquartered?"],
    "employer.founder": [*TWO_HOP["employer.founder"], "Who set up the company {name} works for?"],
    "employer.industry": [*TWO_HOP["employer.industry"], "What industry is {name}'s employer in?"],
    "birth_city.country": [*TWO_HOP["birth_city.country"], "{name} was born in which country?"],
    "birth_city.river": [*TWO_HOP["birth_city.river"], "Which river runs through {name}'s hometown?"],
    "hq.country": [*TWO_HOP["hq.country"], "{name} is based in which country?"],
}


class _UniqueNames:
    """What both name sources share: the world's random source and no name given twice."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def _unique(self, make: Callable[[], str]) -> str:
        for _ in range(1000):
            name = " ".join(make().split())  # a Faker form may carry doubled spaces
            if len(name.replace(" ", "")) >= 3 and name not in self.used:
                self.used.add(name)
                return name
        raise RuntimeError("name space exhausted; generate a smaller world")


class VariedNames(_UniqueNames):
    """Names of several shapes from syllable parts; ``held_out`` takes a disjoint fifth of the parts."""

    def __init__(self, rng: random.Random, held_out: bool) -> None:
        parts = sorted(o + n + c for o, n, c in itertools.product(ONSETS, NUCLEI, CODAS))
        pool = random.Random(4321).sample(parts, len(parts))  # fixed split, independent of the seed
        cut = len(pool) * 4 // 5
        self.parts = pool[cut:] if held_out else pool[:cut]
        super().__init__(rng)

    def _stem(self, low: int, high: int) -> str:
        return "".join(self.rng.choice(self.parts) for _ in range(self.rng.randint(low, high)))

    def word(self) -> str:
        return self._unique(lambda: self._stem(1, 2).capitalize())

    def country(self) -> str:
        return self.word()

    def person(self) -> str:
        def make() -> str:
            first = (self._stem(1, 1) + self.rng.choice(FIRST_ENDINGS)).capitalize()
            return f"{first} {(self._stem(1, 2) + self.rng.choice(SURNAME_ENDINGS)).capitalize()}"

        return self._unique(make)

    def place(self) -> str:
        stem = lambda: (self._stem(1, 1) + self.rng.choice(PLACE_ENDINGS)).capitalize()  # noqa: E731
        return self._unique(lambda: self.rng.choice(PLACE_FORMS).format(w=stem()))

    def org(self, industry: str) -> str:
        def make() -> str:
            stem = self._stem(1, 1).capitalize()
            roll = self.rng.random()
            if roll < 0.4:
                return f"{stem} {self.rng.choice(INDUSTRIES[industry])}"
            if roll < 0.6:
                return f"{stem} & {(self._stem(1, 1) + self.rng.choice(SURNAME_ENDINGS)).capitalize()}"
            return f"{stem} {self.rng.choice(ORG_SUFFIXES)}"

        return self._unique(make)


# Latin-script locales; towns only from locales whose city lists are real towns, not composed ones
# fmt: off
PERSON_LOCALES = {
    "train": [
        "en_US", "en_GB", "en_IE", "en_IN", "en_NG", "de_DE", "de_AT", "fr_FR", "fr_CA", "es_ES", "es_MX", "es_AR",
        "it_IT", "pt_PT", "nl_NL", "sv_SE", "no_NO", "fi_FI", "pl_PL", "cs_CZ", "hu_HU", "ro_RO", "tr_TR", "id_ID",
        "az_AZ", "uz_UZ", "yo_NG", "zu_ZA", "sw", "lt_LT",
    ],
    "held_out": [
        "da_DK", "de_CH", "nl_BE", "pt_BR", "es_CL", "es_CO", "hr_HR", "sk_SK", "sl_SI", "is_IS", "ga_IE", "lv_LV",
        "et_EE", "ig_NG", "en_KE",
    ],
}
PLACE_LOCALES = {
    "train": [
        "de_DE", "de_AT", "it_IT", "fi_FI", "sv_SE", "pl_PL", "cs_CZ", "hu_HU", "pt_PT", "es_ES", "es_AR", "en_IN",
        "en_BD", "zu_ZA", "az_AZ", "ro_RO",
    ],
    "held_out": ["da_DK", "de_CH", "nl_BE", "hr_HR", "sk_SK", "sl_SI", "es_CL", "es_CO"],
}
# fmt: on


class RealNames(_UniqueNames):
    """Names from Faker's locales, with ``VariedNames``'s interface; ``held_out`` takes disjoint locales."""

    def __init__(self, rng: random.Random, held_out: bool) -> None:
        try:
            from faker import Faker
        except ImportError as err:  # an optional dependency: only this style needs it
            raise ImportError(
                "the real-names style needs Faker: pip install 'gmsa-integrations[data]' (or pip install faker)"
            ) from err
        split = "held_out" if held_out else "train"
        super().__init__(rng)
        self.fakers = {}
        for locale in sorted({*PERSON_LOCALES[split], *PLACE_LOCALES[split]}):
            fake = Faker(locale)
            fake.seed_instance(rng.randrange(2**31))
            self.fakers[locale] = fake
        self.person_locales, self.place_locales = PERSON_LOCALES[split], PLACE_LOCALES[split]
        self.english = Faker("en_US")  # country names as an English text spells them
        self.english.seed_instance(rng.randrange(2**31))

    def _fake(self, locales: list[str]):
        return self.fakers[self.rng.choice(locales)]

    def word(self) -> str:
        return self._unique(lambda: self._fake(self.person_locales).last_name())

    def country(self) -> str:
        return self._unique(self.english.country)

    def person(self) -> str:
        def make() -> str:
            fake = self._fake(self.person_locales)
            return f"{fake.first_name()} {fake.last_name()}"

        return self._unique(make)

    def place(self) -> str:
        return self._unique(lambda: self._fake(self.place_locales).city())

    def org(self, industry: str) -> str:
        def make() -> str:
            fake = self._fake(self.person_locales)
            roll = self.rng.random()
            if roll < 0.4:
                return f"{fake.last_name()} {self.rng.choice(INDUSTRIES[industry])}"
            if roll < 0.6:
                return f"{fake.last_name()} & {fake.last_name()}"
            return fake.company()

        return self._unique(make)


def _rounded(number: int, step: int) -> int:
    return number // step * step


def _title(rng: random.Random) -> str:
    if rng.random() < 0.25:
        return f"head of {rng.choice(DEPARTMENTS)}"
    return f"{rng.choice(LEVELS)} {rng.choice(ROLES)}".strip()


def _field(rng: random.Random) -> str:
    return f"{rng.choice(SUBJECT_QUALIFIERS)} {rng.choice(SUBJECTS)}".strip()


def build_world(
    seed: int, *, held_out: bool, people: int = 120, orgs: int = 40, places: int = 30, name_source: str = "syllables"
) -> World:
    """Same entities, facts and links as ``synth.build_world``, in the varied style; ``name_source`` is
    ``syllables`` (``VariedNames``) or ``real`` (``RealNames``, Faker's locales)."""
    if name_source not in ("syllables", "real"):
        raise ValueError(f"name_source must be 'syllables' or 'real', not {name_source!r}")
    rng = random.Random(f"varied:{seed}" if name_source == "syllables" else f"real:{seed}")
    names = VariedNames(rng, held_out) if name_source == "syllables" else RealNames(rng, held_out)
    countries = [names.country() for _ in range(max(3, places // 5))]
    place_list = []
    for _ in range(places):
        facts = {
            "country": rng.choice(countries),
            "population": f"{_rounded(rng.randint(800, 2_000_000), rng.choice([1, 10, 100, 1000])):,}",
            "river": rng.choice(RIVER_FORMS).format(w=names.word()),
            "landmark": rng.choice(LANDMARK_FORMS).format(w=names.word(), k=rng.choice(LANDMARK_KINDS)),
        }
        place_list.append(Entity("place", names.place(), facts))
    org_list = []
    for _ in range(orgs):
        industry, hq = rng.choice(sorted(INDUSTRIES)), rng.choice(place_list)
        facts = {"founded": str(rng.randint(1800, 2020)), "founder": names.person(), "hq": hq.name}
        facts["industry"] = industry
        org_list.append(Entity("org", names.org(industry), facts, {"hq": hq}))
    person_list = []
    for _ in range(people):
        city, employer = rng.choice(place_list), rng.choice(org_list)
        day, month, year = rng.randint(1, 28), rng.choice(MONTHS), rng.randint(1930, 2004)
        facts = {
            "birth_date": rng.choice(DATE_FORMS).format(d=day, m=month, y=year),
            "birth_city": city.name,
            "field": _field(rng),
            "employer": employer.name,
            "title": _title(rng),
        }
        links = {"birth_city": city, "employer": employer}
        person_list.append(Entity("person", names.person(), facts, links))
    world = World(person_list, org_list, place_list, {})
    for entity in [*place_list, *org_list, *person_list]:
        world.passages[entity.name] = write_passage(entity, rng)
    return world


def write_passage(entity: Entity, rng: random.Random) -> str:
    """The subject is named in the first sentence; later ones may use a pronoun."""
    single = {"person": PERSON_FACTS, "org": ORG_FACTS, "place": PLACE_FACTS}[entity.kind]
    extra = PERSON_EXTRA if entity.kind == "person" else {}
    pairs = {"person": PERSON_PAIRS, "org": ORG_PAIRS, "place": {}}[entity.kind]
    templates, stated = [], set()
    for pair, phrasings in pairs.items():
        if rng.random() < 0.5:
            templates.append(rng.choice(phrasings))
            stated.update(pair)
    for fact, phrasings in single.items():
        if fact not in stated:
            templates.append(rng.choice([*phrasings, *extra.get(fact, [])]))
    rng.shuffle(templates)
    pronoun = rng.choice(["he", "she"]) if entity.kind == "person" else entity.kind
    subject, possessive = PRONOUNS[pronoun]
    sentences = []
    for i, template in enumerate(templates):
        if i > 0 and rng.random() < 0.6:
            if template.startswith("{name}'s "):
                template = possessive + template[len("{name}") + 2 :]
            elif template.startswith("{name} "):
                template = subject + template[len("{name}") :]
        sentence = _A_BEFORE_VOWEL.sub(r"\1n ", template.format(name=entity.name, **entity.facts))
        sentences.append(sentence[0].upper() + sentence[1:])
    insert_fillers(sentences, entity, rng)
    return " ".join(sentences)
