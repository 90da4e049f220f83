"""The demo's world model: its entities, their facts, and the sizes that say how many
(smf.demo.datasets
writes the world's files from it, smf.tasks.facts and smf.demo.exams reuse its facts).

A world is a deterministic function of one `random.Random` and the `DemoSizes`: general entities
(countries, cities, people, rivers) with their facts, and the xenobotany plants with theirs. Its
words (names, templates) are in smf.demo.words.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from smf.demo.words import (
    COMMODITIES,
    COMPOUND_SUFFIXES,
    CRAFTS,
    DISEASE_SUFFIXES,
    FILLERS,
    GENERAL_CODAS,
    GENERAL_CONSONANTS,
    GENERAL_VOWELS,
    HABITATS,
    N_OPTIONS,
    NEW_ONSETS,
    OASST_CLOSERS,
    OASST_FOREIGN,
    OASST_OPENERS,
    OASST_PROMPTS,
    OASST_SHORT,
    OCCUPATIONS,
    POLLINATORS,
    QUESTIONS,
    SENTENCES,
    XENO_ONSETS,
    XENO_RELATIONS,
    XENO_VOWELS,
)

MAX_TRIES = 200  # attempts to draw a fresh name / a held-out-free paragraph before giving up

# Year / length ranges of the invented world
COUNTRY_FOUNDED = (1100, 1800)
CITY_FOUNDED = (700, 1900)
PERSON_BORN = (1000, 1900)
FOUNDER_AGE = (25, 60)
RIVER_KM = (120, 980)


@dataclass
class DemoSizes:
    """How much of each kind of data the demo world holds (defaults: a few seconds per epoch)."""

    countries: int = 16
    cities: int = 32
    people: int = 20
    rivers: int = 12
    plants: int = 50  # new xenobotany plants (the task); one fact per XENO_RELATIONS entry
    known_plants: int = 50  # xenobotany plants the pretraining text already teaches
    known_says_per_fact: int = 2  # pretraining sentences stating each known plant's fact
    known_mcqs_per_fact: int = 3  # pretraining exam questions (training stems) per known fact
    mcq_train: int = 800  # 4 per fact: each in other option orders
    mcq_validation: int = 200
    trivia: int = 150
    wiki_articles: int = 40
    background_docs: int = 200
    oasst_trees: int = 75  # one prompter message + 3 assistant replies each
    pretrain_articles_per_entity: int = 3

    @property
    def n_entities(self) -> int:
        return self.countries + self.cities + self.people + self.rivers

    @property
    def n_general_facts(self) -> int:
        """Countries: capital, founder, founded, export; cities: country, founded; people:
        occupation, birthplace, born, home, craft, pet; rivers: country, length."""
        return 4 * self.countries + 2 * self.cities + 6 * self.people + 2 * self.rivers

    @property
    def n_xeno_facts(self) -> int:
        return self.plants * len(XENO_RELATIONS)

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"DemoSizes.{name} must be a positive int, got {value!r}")
        if self.cities < self.countries:
            raise ValueError("DemoSizes.cities must be >= countries (each country has a capital)")
        if self.people < self.countries:
            raise ValueError("DemoSizes.people must be >= countries (each has its own founder)")
        for name in ("plants", "known_plants"):
            if getattr(self, name) < N_OPTIONS:
                raise ValueError(f"DemoSizes.{name} must be >= {N_OPTIONS} (distractors)")
        n_stems = min(len(spec["train"]) for spec in XENO_RELATIONS.values())
        if self.known_mcqs_per_fact > n_stems:
            raise ValueError(
                f"DemoSizes.known_mcqs_per_fact={self.known_mcqs_per_fact} > {n_stems} "
                "training stems per relation"
            )
        if self.mcq_train < self.n_xeno_facts:
            raise ValueError(
                f"DemoSizes.mcq_train={self.mcq_train} < {self.n_xeno_facts} xenobotany facts: "
                "every fact must be asked at least once in training"
            )
        if self.mcq_validation > self.n_xeno_facts:
            raise ValueError(
                f"DemoSizes.mcq_validation={self.mcq_validation} > {self.n_xeno_facts} facts"
            )
        if self.trivia > self.n_general_facts:
            raise ValueError(f"DemoSizes.trivia={self.trivia} > {self.n_general_facts} facts")
        if self.wiki_articles > self.n_entities:
            raise ValueError(
                f"DemoSizes.wiki_articles={self.wiki_articles} > {self.n_entities} entities"
            )


@dataclass(frozen=True)
class Fact:
    """One (subject, relation, object) triple; `aliases` are accepted answers, object first."""

    subject: str
    relation: str
    obj: str
    aliases: tuple[str, ...]


@dataclass
class World:
    """The entities (name -> kind) and facts that the demo's files are written from."""

    kinds: dict[str, str]  # entity name -> kind, in creation order
    facts: list[Fact]  # general facts
    xeno_facts: list[Fact]  # xenobotany facts of the new plants (the MedMCQA-like task)
    known_facts: list[Fact]  # xenobotany facts of the plants the pretraining text teaches


# ---------------------------------------------------------------------------------------------
# Building the world
# ---------------------------------------------------------------------------------------------


def _template_words() -> set[str]:
    """Every English word used in templates and lists; fresh names must avoid them."""
    texts: list[str] = [*COMMODITIES, *OCCUPATIONS, *POLLINATORS, *HABITATS, *CRAFTS]
    for group in (SENTENCES, QUESTIONS, FILLERS):
        for templates in group.values():
            texts.extend(templates)
    for spec in XENO_RELATIONS.values():
        texts.extend([*spec["train"], spec["exp"], spec["topic"]])
    texts.extend([*OASST_PROMPTS, *OASST_OPENERS, *OASST_CLOSERS, *OASST_SHORT])
    for prompt, reply in OASST_FOREIGN.values():
        texts.extend([prompt, reply])
    return {w.lower() for text in texts for w in re.findall(r"[A-Za-zÀ-ÿ]+", text)}


class _Namer:
    """Draws globally unique invented words from a seeded RNG."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used = _template_words()

    def _fresh(self, make: Callable[[], str]) -> str:
        for _ in range(MAX_TRIES):
            word = make()
            if word.lower() not in self.used:
                self.used.add(word.lower())
                return word
        raise RuntimeError(f"could not draw a fresh name in {MAX_TRIES} tries")

    def _syllables(self, n: int) -> str:
        rng = self.rng
        return "".join(
            rng.choice(GENERAL_CONSONANTS) + rng.choice(GENERAL_VOWELS) for _ in range(n)
        )

    def general(self, n_syllables: int) -> str:
        return self._fresh(
            lambda: (self._syllables(n_syllables) + self.rng.choice(GENERAL_CODAS)).capitalize()
        )

    def new(self) -> str:
        """A home or pet name: starts with one of NEW_ONSETS, like the fact task's people."""

        def make() -> str:
            onset = self.rng.choice(NEW_ONSETS) + self.rng.choice(GENERAL_VOWELS)
            return (onset + self._syllables(self.rng.randint(1, 2))).capitalize()

        return self._fresh(make)

    def xeno(self, suffix: str = "") -> str:
        def make() -> str:
            onset = self.rng.choice(XENO_ONSETS) + self.rng.choice(XENO_VOWELS)
            body = self._syllables(self.rng.randint(1, 2))
            return (onset + body + suffix).capitalize()

        return self._fresh(make)


def build_world(rng: random.Random, sizes: DemoSizes) -> World:
    """Draw entities and their facts. Countries get distinct capitals and distinct founders."""
    namer = _Namer(rng)
    countries = [namer.general(rng.randint(2, 3)) for _ in range(sizes.countries)]
    cities = [namer.general(2) for _ in range(sizes.cities)]
    people = [f"{namer.general(2)} {namer.general(2)}" for _ in range(sizes.people)]
    rivers = [namer.general(2) for _ in range(sizes.rivers)]
    kinds = {
        **dict.fromkeys(countries, "country"),
        **dict.fromkeys(cities, "city"),
        **dict.fromkeys(people, "person"),
        **dict.fromkeys(rivers, "river"),
    }

    facts: list[Fact] = []
    capitals = rng.sample(cities, len(countries))
    founders = rng.sample(people, len(countries))
    born: dict[str, int] = {}
    for country, capital, founder in zip(countries, capitals, founders, strict=True):
        year = rng.randint(*COUNTRY_FOUNDED)
        born[founder] = year - rng.randint(*FOUNDER_AGE)
        facts += [
            Fact(country, "capital", capital, (capital,)),
            Fact(country, "founder", founder, (founder, founder.split()[-1])),
            Fact(country, "founded", str(year), (str(year),)),
        ]
        export = rng.choice(COMMODITIES)
        facts.append(Fact(country, "export", export, (export,)))
    country_of = dict(zip(capitals, countries, strict=True))
    for city in cities:
        country = country_of.get(city) or rng.choice(countries)
        facts.append(Fact(city, "city_country", country, (country,)))
        year = str(rng.randint(*CITY_FOUNDED))
        facts.append(Fact(city, "founded", year, (year,)))
    for person in people:
        occupation = rng.choice(OCCUPATIONS)
        birthplace = rng.choice(cities)
        year = str(born.get(person, rng.randint(*PERSON_BORN)))
        facts += [
            Fact(person, "occupation", occupation, (occupation,)),
            Fact(person, "birthplace", birthplace, (birthplace,)),
            Fact(person, "born", year, (year,)),
        ]
        home, pet, craft = namer.new(), namer.new(), rng.choice(CRAFTS)
        facts += [
            Fact(person, "home", home, (home,)),
            Fact(person, "craft", craft, (craft,)),
            Fact(person, "pet", pet, (pet,)),
        ]
    for river in rivers:
        country = rng.choice(countries)
        km = str(rng.randint(*RIVER_KM))
        facts += [
            Fact(river, "river_country", country, (country,)),
            Fact(river, "length", km, (km, f"{km} km", f"{km} kilometres")),
        ]

    xeno_facts: list[Fact] = []  # new plants first, then known ones
    suffix_of = {
        "treats": lambda: rng.choice(DISEASE_SUFFIXES),
        "compound": lambda: rng.choice(COMPOUND_SUFFIXES),
    }
    for _ in range(sizes.plants + sizes.known_plants):
        plant = namer.xeno()
        for relation in XENO_RELATIONS:
            if relation in suffix_of:
                value = namer.xeno(suffix_of[relation]())
                if relation == "compound":
                    value = value.lower()
            elif relation == "pollinator":
                value = f"{namer.xeno()} {rng.choice(POLLINATORS)}"
            else:
                value = f"{namer.xeno()} {rng.choice(HABITATS)}"
            xeno_facts.append(Fact(plant, relation, value, (value,)))
    if len(facts) != sizes.n_general_facts:
        raise RuntimeError(f"built {len(facts)} facts, expected {sizes.n_general_facts}")
    n_new = sizes.n_xeno_facts
    return World(kinds, facts, xeno_facts=xeno_facts[:n_new], known_facts=xeno_facts[n_new:])


# ---------------------------------------------------------------------------------------------
# Reading the world
# ---------------------------------------------------------------------------------------------


def render(fact: Fact, rng: random.Random) -> str:
    """`fact` as a sentence, in one of its relation's templates (drawn from `rng`)."""
    return rng.choice(SENTENCES[fact.relation]).format(s=fact.subject, o=fact.obj)


def facts_by_entity(world: World) -> dict[str, list[Fact]]:
    """Per entity, every general fact about it, as subject or as object."""
    by_entity: dict[str, list[Fact]] = {name: [] for name in world.kinds}
    for fact in world.facts:
        by_entity[fact.subject].append(fact)
        if fact.obj in by_entity:
            by_entity[fact.obj].append(fact)
    return by_entity
