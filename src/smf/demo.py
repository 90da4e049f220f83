"""Offline demo profile: a small, coherent fictional world, written as the real datasets' files.

The demo runs the whole pipeline on a laptop CPU with exactly the paper's rules, so the data it
makes is written in the REAL source schemas (MedMCQA, TriviaQA rc.nocontext, WikiText rows,
OpenAssistant oasst1) and goes through the same loaders as the real datasets.

The world is built so that learning and forgetting are both measurable:
- general entities (countries, cities, people, rivers) and their facts appear in the pretraining
  text, the background text, the WikiText-like test articles and the OASST replies; the TriviaQA
  questions ask about them, and every trivia question is also in the pretraining text, so the
  base model can answer them and forgetting shows up as lost accuracy;
- people also have everyday facts (home, trade, pet) in the templates of paper 1's fact task
  (smf.demo_facts), and the pretraining text asks about each of them in every question form, so
  the base model has learned how such facts are stated and asked before the fact task teaches
  it the same relations about new people (a real model knows the language; the facts are new);
- the MedMCQA-like task is about NEW plants ("xenobotany": invented names that occur in no
  general text), so the base model cannot know their facts and finetuning has to teach them.
  Validation questions ask facts that the training questions also ask, in a training stem and a
  new option order, so only a model that stored the fact (not the answer's letter or position)
  gets them right. The pretraining text teaches other, *known* plants: their facts stated and
  asked as answered exam questions, so the base model knows how such questions are answered,
  as a real instruct model does (smf.demo_exams writes both).

Everything is a deterministic function of the seed (one `random.Random`): same seed, same bytes.
The world's words (names, templates) are in smf.demo_words; its tokenizer and tiny model config
in smf.demo_model.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from smf.demo_exams import known_plant_texts, medmcqa_splits, uuid4
from smf.demo_words import (
    COMMODITIES,
    COMPOUND_SUFFIXES,
    CRAFTS,
    DISEASE_SUFFIXES,
    EVERYDAY_RELATIONS,
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
    SECTIONS,
    SENTENCES,
    XENO_ONSETS,
    XENO_RELATIONS,
    XENO_VOWELS,
)

# ---------------------------------------------------------------------------------------------
# Files written by write_demo_world (name -> file name)
# ---------------------------------------------------------------------------------------------

DEMO_FILES = {
    "medmcqa_train": "medmcqa_train.jsonl",
    "medmcqa_validation": "medmcqa_validation.jsonl",
    "triviaqa_validation": "triviaqa_validation.jsonl",
    "wikitext_test": "wikitext_test.jsonl",
    "background": "background.jsonl",
    "oasst1": "oasst1.jsonl",
    "pretrain": "pretrain.jsonl",
}

TRIVIA_SOURCE = "demo"
OASST_MIN_CHARS = 50  # the recovery filter keeps English rank-0/1 assistant replies this long
MAX_TRIES = 200  # attempts to draw a fresh name / a held-out-free paragraph before giving up

# Probabilities that give the loaders' filters something to drop, or vary the records
OASST_NON_EN_P = 0.12  # whole conversation trees in another language
OASST_UNRANKED_P = 0.1  # trees whose assistant replies have rank None
OASST_SHORT_REPLY_P = 0.3  # trees whose third (rank-2) reply is a short one
MAX_FILLERS = 2  # fact-free sentences per paragraph, for variety

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
class _World:
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


def _build_world(rng: random.Random, sizes: DemoSizes) -> _World:
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
    return _World(kinds, facts, xeno_facts=xeno_facts[:n_new], known_facts=xeno_facts[n_new:])


# ---------------------------------------------------------------------------------------------
# Encyclopedic text in WikiText-103 style (" , " and " . " spaced, " = Title = " headings)
# ---------------------------------------------------------------------------------------------


def _wikify(text: str) -> str:
    """Space punctuation like the tokenized WikiText-103 files ("a , b ." and "@-@")."""
    text = text.replace("-", " @-@ ")
    text = re.sub(r"([,.;:!?()])", r" \1 ", text)
    return " ".join(text.split())


def _render(fact: Fact, rng: random.Random) -> str:
    return rng.choice(SENTENCES[fact.relation]).format(s=fact.subject, o=fact.obj)


def _facts_by_entity(world: _World) -> dict[str, list[Fact]]:
    by_entity: dict[str, list[Fact]] = {name: [] for name in world.kinds}
    for fact in world.facts:
        by_entity[fact.subject].append(fact)
        if fact.obj in by_entity:
            by_entity[fact.obj].append(fact)
    return by_entity


def _paragraph(rng: random.Random, name: str, kind: str, facts: list[Fact], avoid: set[str]) -> str:
    """Facts (random templates) plus a few fact-free fillers, shuffled; never a paragraph in
    `avoid` (the held-out test paragraphs)."""
    pool = FILLERS["any"] + FILLERS[kind]
    for _ in range(MAX_TRIES):
        sentences = [_render(fact, rng) for fact in facts]
        sentences += [f.format(s=name) for f in rng.sample(pool, rng.randint(0, MAX_FILLERS))]
        rng.shuffle(sentences)
        text = _wikify(" ".join(sentences))
        if text not in avoid:
            return text
    raise RuntimeError(f"no held-out-free paragraph about {name!r} in {MAX_TRIES} tries")


def _article_rows(
    rng: random.Random,
    name: str,
    kind: str,
    facts: list[Fact],
    avoid: set[str],
    max_sections: int | None = None,
) -> list[str]:
    """One article as HF WikiText rows: "", " = T = \\n", "", paragraphs, then for each section
    "", " = = S = = \\n", "", paragraphs (blank rows exactly as in the real files)."""
    rows = ["", f" = {name} = \n", ""]
    sections = SECTIONS[kind][:max_sections]
    for heading, relations in sections:
        section_facts = [f for f in facts if f.relation in relations]
        if heading and not section_facts:
            continue
        if heading:
            rows += ["", f" = = {heading} = = \n", ""]
        rows.append(f" {_paragraph(rng, name, kind, section_facts, avoid)} \n")
    return rows


def _rows_to_text(rows: list[str]) -> str:
    """An article as the WikiText probe sees it: rows stripped, blanks dropped, joined by
    blank lines."""
    return "\n\n".join(row.strip() for row in rows if row.strip())


def _paragraphs(rows: list[str]) -> list[str]:
    return [row.strip() for row in rows if row.strip() and not row.strip().startswith("=")]


# ---------------------------------------------------------------------------------------------
# Records in the real source schemas
# ---------------------------------------------------------------------------------------------


def normalize_trivia_answer(text: str) -> str:
    """The official TriviaQA normalization: underscores to spaces, lowercase, punctuation to
    spaces, articles dropped, whitespace collapsed."""
    text = text.replace("_", " ").lower()
    text = re.sub(r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~‘’´]", " ", text)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def trivia_record(
    question: str, question_id: str, fact: Fact, source: str, answer_type: str
) -> dict:
    """One TriviaQA rc.nocontext record asking `fact` (entity pages / search results empty)."""
    aliases = list(fact.aliases)
    return {
        "question": question,
        "question_id": question_id,
        "question_source": source,
        "entity_pages": {"doc_source": [], "filename": [], "title": [], "wiki_context": []},
        "search_results": {
            "description": [],
            "filename": [],
            "rank": [],
            "title": [],
            "url": [],
            "search_context": [],
        },
        "answer": {
            "aliases": aliases,
            "normalized_aliases": [normalize_trivia_answer(a) for a in aliases],
            "matched_wiki_entity_name": "",
            "normalized_matched_wiki_entity_name": "",
            "normalized_value": normalize_trivia_answer(fact.obj),
            "type": answer_type,
            "value": fact.obj,
        },
    }


def _trivia(rng: random.Random, world: _World, sizes: DemoSizes) -> list[dict]:
    """TriviaQA rc.nocontext records about general facts."""
    return [
        trivia_record(
            rng.choice(QUESTIONS[fact.relation]).format(s=fact.subject),
            f"dm_{i}",
            fact,
            TRIVIA_SOURCE,
            "WikipediaEntity",
        )  # fmt: skip
        for i, fact in enumerate(rng.sample(world.facts, sizes.trivia))
    ]


def _everyday_questions(world: _World, asked: set[str]) -> list[str]:
    """Every question form about every person's everyday facts, answered (TriviaQA's questions
    are already in the pretraining text once)."""
    texts = []
    for fact in world.facts:
        if fact.relation in EVERYDAY_RELATIONS:
            for form in QUESTIONS[fact.relation]:
                question = form.format(s=fact.subject)
                if question not in asked:
                    texts.append(f"Question: {question}\nAnswer: {fact.obj}")
    return texts


def _oasst(rng: random.Random, world: _World, sizes: DemoSizes) -> list[dict]:
    """oasst1-style message rows: per tree one prompter message and three ranked assistant
    replies. Some trees are non-English, some unranked, some have a short rank-2 reply."""
    by_entity = _facts_by_entity(world)
    names = list(world.kinds)
    rows = []
    for tree in range(sizes.oasst_trees):
        name = rng.choice(names)
        root_id = uuid4(rng)
        lang = rng.choice(sorted(OASST_FOREIGN)) if rng.random() < OASST_NON_EN_P else "en"
        unranked = rng.random() < OASST_UNRANKED_P
        if lang == "en":
            prompt = rng.choice(OASST_PROMPTS).format(s=name)
            replies = []
            for _ in range(2):
                facts = rng.sample(by_entity[name], min(3, len(by_entity[name])))
                body = " ".join(_render(f, rng) for f in facts)
                closer = rng.choice(OASST_CLOSERS).format(s=name)
                replies.append(f"{rng.choice(OASST_OPENERS)}{body} {closer}")
            if rng.random() < OASST_SHORT_REPLY_P:
                replies.append(rng.choice(OASST_SHORT))
            else:
                replies.append(_render(rng.choice(by_entity[name]), rng))
        else:
            prompt, reply = (t.format(s=name) for t in OASST_FOREIGN[lang])
            replies = [reply] * 3
        ranks: list[int | None] = [None] * 3 if unranked else [*rng.sample([0, 1], 2), 2]
        rows.append(
            {
                "message_id": root_id,
                "parent_id": None,
                "message_tree_id": root_id,
                "text": prompt,
                "role": "prompter",
                "lang": lang,
                "rank": None,
            }
        )
        for text, rank in zip(replies, ranks, strict=True):
            if lang == "en" and rank in (0, 1) and len(text) < OASST_MIN_CHARS:
                raise RuntimeError(f"oasst tree {tree}: rank-{rank} reply shorter than minimum")
            rows.append(
                {
                    "message_id": uuid4(rng),
                    "parent_id": root_id,
                    "message_tree_id": root_id,
                    "text": text,
                    "role": "assistant",
                    "lang": lang,
                    "rank": rank,
                }
            )
    return rows


def _write_jsonl_atomic(path: Path, records: Iterable[dict]) -> None:
    """Write JSONL via a temp file + rename, so readers never see a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8", newline="\n") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def write_demo_world(
    out_dir: str | Path, seed: int = 0, sizes: DemoSizes | None = None
) -> dict[str, Path]:
    """Write the demo data files (see DEMO_FILES) into out_dir; returns name -> path.

    Order matters for held-out-ness: the WikiText test articles are drawn first and no later
    pretraining/background paragraph may equal one of their paragraphs.
    """
    sizes = sizes or DemoSizes()
    rng = random.Random(seed)
    world = _build_world(rng, sizes)
    by_entity = _facts_by_entity(world)
    names = list(world.kinds)

    wiki_rows: list[str] = []
    for name in rng.sample(names, sizes.wiki_articles):
        wiki_rows += _article_rows(rng, name, world.kinds[name], by_entity[name], set())
    wiki_rows.append("")  # the real files end with a blank row
    held_out = set(_paragraphs(wiki_rows))

    trivia = _trivia(rng, world, sizes)
    pretrain = [
        _rows_to_text(_article_rows(rng, name, world.kinds[name], by_entity[name], held_out))
        for name in names
        for _ in range(sizes.pretrain_articles_per_entity)
    ]
    pretrain += [f"Question: {r['question']}\nAnswer: {r['answer']['value']}" for r in trivia]
    pretrain += _everyday_questions(world, asked={r["question"] for r in trivia})
    pretrain += known_plant_texts(
        rng, world.known_facts, sizes.known_says_per_fact, sizes.known_mcqs_per_fact
    )
    rng.shuffle(pretrain)

    background = []
    for _ in range(sizes.background_docs):
        name = rng.choice(names)
        n_sections = rng.randint(1, len(SECTIONS[world.kinds[name]]))
        rows = _article_rows(rng, name, world.kinds[name], by_entity[name], held_out, n_sections)
        background.append(_rows_to_text(rows))

    mcq_train, mcq_validation = medmcqa_splits(
        rng, world.xeno_facts, sizes.mcq_train, sizes.mcq_validation
    )
    oasst = _oasst(rng, world, sizes)

    records = {
        "medmcqa_train": mcq_train,
        "medmcqa_validation": mcq_validation,
        "triviaqa_validation": trivia,
        "wikitext_test": [{"text": row} for row in wiki_rows],
        "background": [{"text": text} for text in background],
        "oasst1": oasst,
        "pretrain": [{"text": text} for text in pretrain],
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, file_name in DEMO_FILES.items():
        paths[name] = out / file_name
        _write_jsonl_atomic(paths[name], records[name])
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the offline demo data world (JSONL).")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name, path in write_demo_world(args.out_dir, seed=args.seed).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
