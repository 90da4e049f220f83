"""The demo's exam questions: xenobotany facts asked in MedMCQA's schema.

Two uses, one record maker:
- the MedMCQA-like task (rule `prepare_data` reads it as MedMCQA): facts about NEW plants, each
  asked several times in training and once more in validation, in a fresh option order;
- answered exam questions about KNOWN plants in the demo's pretraining text, in paper 3's
  training format, so the base model has learned how an exam question is answered from a fact
  it has read, as a real instruct model has (without them full finetuning on the task stayed
  at chance: docs/results/demo_medmcqa.md).
Deterministic given the caller's `random.Random`.
"""

from __future__ import annotations

import random
import uuid

from smf.data.prompts import mcq_training_text
from smf.demo.words import N_OPTIONS, XENO_RELATIONS
from smf.demo.world import Fact

XENO_SUBJECT = "Xenobotany"
EXP_MISSING_P = 0.15  # MedMCQA rows with exp = None (the real data has many)
TOPIC_MISSING_P = 0.1  # MedMCQA rows with topic_name = None


def uuid4(rng: random.Random) -> str:
    """A version-4 UUID drawn from `rng` (record ids of MedMCQA and OASST rows)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def explanation(fact: Fact) -> str:
    return XENO_RELATIONS[fact.relation]["exp"].format(s=fact.subject, o=fact.obj)


def _values(facts: list[Fact]) -> dict[str, list[str]]:
    """Per relation, every object: the pool distractors are drawn from."""
    return {r: [f.obj for f in facts if f.relation == r] for r in XENO_RELATIONS}


def mcq_record(rng: random.Random, fact: Fact, stem: str, values: list[str]) -> dict:
    """A MedMCQA HF record (cop 0-3) asking `fact` with three distractors of the same relation."""
    spec = XENO_RELATIONS[fact.relation]
    distractors = rng.sample([v for v in values if v != fact.obj], N_OPTIONS - 1)
    options = [fact.obj, *distractors]
    rng.shuffle(options)
    exp = None if rng.random() < EXP_MISSING_P else explanation(fact)
    topic = None if rng.random() < TOPIC_MISSING_P else spec["topic"]
    return {
        "id": uuid4(rng),
        "question": stem.format(s=fact.subject),
        "opa": options[0],
        "opb": options[1],
        "opc": options[2],
        "opd": options[3],
        "cop": options.index(fact.obj),
        "choice_type": "single",
        "exp": exp,
        "subject_name": XENO_SUBJECT,
        "topic_name": topic,
    }


def medmcqa_splits(
    rng: random.Random, facts: list[Fact], n_train: int, n_validation: int
) -> tuple[list[dict], list[dict]]:
    """Training asks every fact (cycling through the training stems); validation asks a sample of
    the same facts again in a training stem, with a fresh option order, so only a model that
    stored the fact (not the answer's letter or position) gets it right."""
    values = _values(facts)
    order = list(facts)
    rng.shuffle(order)
    train = []
    for i in range(n_train):
        fact = order[i % len(order)]
        stems = XENO_RELATIONS[fact.relation]["train"]
        stem = stems[(i // len(order)) % len(stems)]
        train.append(mcq_record(rng, fact, stem, values[fact.relation]))
    rng.shuffle(train)
    validation = []
    for fact in rng.sample(facts, n_validation):
        stem = rng.choice(XENO_RELATIONS[fact.relation]["train"])
        validation.append(mcq_record(rng, fact, stem, values[fact.relation]))
    return train, validation


def known_plant_texts(
    rng: random.Random, facts: list[Fact], says_per_fact: int, mcqs_per_fact: int
) -> list[str]:
    """Pretraining texts about the known plants: each fact stated `says_per_fact` times and asked
    in `mcqs_per_fact` training stems as an answered exam question (paper 3's training text).
    One text each: bundling them (fewer, longer texts: 27 % less pretraining time) cost the base
    model 37 of its 86 % on TriviaQA."""
    values = _values(facts)
    texts = []
    for fact in facts:
        texts += [explanation(fact)] * says_per_fact
        for stem in rng.sample(XENO_RELATIONS[fact.relation]["train"], mcqs_per_fact):
            rec = mcq_record(rng, fact, stem, values[fact.relation])  # its id, exp, topic unused
            options = [rec[column] for column in ("opa", "opb", "opc", "opd")]
            exam = {"question": rec["question"], "options": options, "answer": rec["cop"]}
            texts.append(mcq_training_text({**exam, "explanation": explanation(fact)}))
    return texts
