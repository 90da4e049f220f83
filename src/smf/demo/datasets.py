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
  (smf.tasks.facts), and the pretraining text asks about each of them in every question form, so
  the base model has learned how such facts are stated and asked before the fact task teaches
  it the same relations about new people (a real model knows the language; the facts are new);
- the MedMCQA-like task is about NEW plants ("xenobotany": invented names that occur in no
  general text), so the base model cannot know their facts and finetuning has to teach them.
  Validation questions ask facts that the training questions also ask, in a training stem and a
  new option order, so only a model that stored the fact (not the answer's letter or position)
  gets them right. The pretraining text teaches other, *known* plants: their facts stated and
  asked as answered exam questions, so the base model knows how such questions are answered,
  as a real instruct model does (smf.demo.exams writes both).

Everything is a deterministic function of the seed (one `random.Random`): same seed, same bytes.
This module writes the files; the world they are written from (entities, facts, `DemoSizes`) is
in smf.demo.world, its words (names, templates) in smf.demo.words, its tokenizer and tiny model
config in smf.demo.model.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
from collections.abc import Iterable
from pathlib import Path

from smf.demo.exams import known_plant_texts, medmcqa_splits, uuid4
from smf.demo.words import (
    EVERYDAY_RELATIONS,
    FILLERS,
    OASST_CLOSERS,
    OASST_FOREIGN,
    OASST_OPENERS,
    OASST_PROMPTS,
    OASST_SHORT,
    QUESTIONS,
    SECTIONS,
)
from smf.demo.world import MAX_TRIES, DemoSizes, Fact, World, build_world, facts_by_entity, render

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

# Probabilities that give the loaders' filters something to drop, or vary the records
OASST_NON_EN_P = 0.12  # whole conversation trees in another language
OASST_UNRANKED_P = 0.1  # trees whose assistant replies have rank None
OASST_SHORT_REPLY_P = 0.3  # trees whose third (rank-2) reply is a short one
MAX_FILLERS = 2  # fact-free sentences per paragraph, for variety


# ---------------------------------------------------------------------------------------------
# Encyclopedic text in WikiText-103 style (" , " and " . " spaced, " = Title = " headings)
# ---------------------------------------------------------------------------------------------


def _wikify(text: str) -> str:
    """Space punctuation like the tokenized WikiText-103 files ("a , b ." and "@-@")."""
    text = text.replace("-", " @-@ ")
    text = re.sub(r"([,.;:!?()])", r" \1 ", text)
    return " ".join(text.split())


def _paragraph(rng: random.Random, name: str, kind: str, facts: list[Fact], avoid: set[str]) -> str:
    """Facts (random templates) plus a few fact-free fillers, shuffled; never a paragraph in
    `avoid` (the held-out test paragraphs)."""
    pool = FILLERS["any"] + FILLERS[kind]
    for _ in range(MAX_TRIES):
        sentences = [render(fact, rng) for fact in facts]
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


def _trivia(rng: random.Random, world: World, sizes: DemoSizes) -> list[dict]:
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


def _everyday_questions(world: World, asked: set[str]) -> list[str]:
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


def _oasst(rng: random.Random, world: World, sizes: DemoSizes) -> list[dict]:
    """oasst1-style message rows: per tree one prompter message and three ranked assistant
    replies. Some trees are non-English, some unranked, some have a short rank-2 reply."""
    by_entity = facts_by_entity(world)
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
                body = " ".join(render(f, rng) for f in facts)
                closer = rng.choice(OASST_CLOSERS).format(s=name)
                replies.append(f"{rng.choice(OASST_OPENERS)}{body} {closer}")
            if rng.random() < OASST_SHORT_REPLY_P:
                replies.append(rng.choice(OASST_SHORT))
            else:
                replies.append(render(rng.choice(by_entity[name]), rng))
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


def write_jsonl_atomic(path: Path, records: Iterable[dict]) -> None:
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
    world = build_world(rng, sizes)
    by_entity = facts_by_entity(world)
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
        write_jsonl_atomic(paths[name], records[name])
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
