"""Paper 1's fact-learning task: new facts about entities nobody has seen (rule fact_task,
used by the demo and the paper profile alike).

Paper 1 measures learning as answering questions about facts the model was taught in a batch of
paraphrases, and forgetting on what it knew before. This version invents people whose names are
two words starting with letters no name of a demo person starts with (j, w, h, c, y; the demo
world uses them only for homes and pets) and are made-up words for a real model, so the base
model cannot know them and every correct answer after training is learned. The relations (home,
trade, pet) and their templates are the ones the demo world states and asks about its known
people, as a real model knows how such facts are said before it learns new ones.

Each fact is taught by several paraphrases: declarative sentences and question/answer pairs.
Every relation has a few question forms; for each fact one of them, drawn at random, is held out
of its training and asks the evaluation question. The model has seen that form, but only about
other people, so a correct answer needs the fact, not a memorised string. (A form never seen
in training at all proved out of reach of the demo's 4-layer model.) Paper 1 had an LLM write
paraphrases; the demo uses templates, which are deterministic and need no model.

Output, in schemas the pipeline already reads:
- `facts_train.jsonl`: {"text": ...} rows (a `text` dataset), one row per paraphrase, grouped by
  fact so a batch can hold the paraphrases of one fact;
- `facts_eval.jsonl`: TriviaQA rc.nocontext records (a `qa` dataset), one held-out question per
  fact, scored by the existing QA probe: the learning probe;
- `facts_taught.jsonl`: the same records, but each asks the fact in its first trained question
  form, the exact prompt of one of its paraphrases. It measures recall of what was taught, not
  knowledge that carries to a new wording, and is reported apart (`extra_learning_probes`); it is
  empty when `asks_per_fact` is 0.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from smf.demo.datasets import trivia_record, write_jsonl_atomic
from smf.demo.words import (
    CRAFTS,
    EVERYDAY_RELATIONS,
    GENERAL_CONSONANTS,
    GENERAL_VOWELS,
    NEW_ONSETS,
    QUESTIONS,
    SENTENCES,
)
from smf.demo.world import MAX_TRIES, Fact

FACT_FILES = {
    "facts_train": "facts_train.jsonl",
    "facts_eval": "facts_eval.jsonl",
    "facts_taught": "facts_taught.jsonl",
}
FACT_SOURCE = "demo_facts"

# The relations and templates the demo world also uses for its known people (smf.demo.words), so
# the demo's base model knows how such facts are stated and asked; one question form per fact is
# held out of its training.
RELATIONS = {r: {"says": SENTENCES[r], "asks": QUESTIONS[r]} for r in EVERYDAY_RELATIONS}


@dataclass
class FactSizes:
    """How many new entities (each gets one fact per relation) and paraphrase counts."""

    entities: int = 40
    says_per_fact: int = 4  # declarative paraphrases taught per fact (<= templates)
    asks_per_fact: int = 2  # trained question forms per fact (< templates: one is held out)

    def __post_init__(self) -> None:
        if self.entities < 1:
            raise ValueError(f"FactSizes.entities must be >= 1, got {self.entities}")
        for name, key, held in (("says_per_fact", "says", 0), ("asks_per_fact", "asks", 1)):
            most = min(len(spec[key]) for spec in RELATIONS.values()) - held
            if not 0 <= getattr(self, name) <= most:
                raise ValueError(f"FactSizes.{name} must be in 0..{most}")
        if self.says_per_fact + self.asks_per_fact == 0:
            raise ValueError("FactSizes: each fact needs at least one training paraphrase")

    @property
    def n_facts(self) -> int:
        return self.entities * len(RELATIONS)


class _NewNamer:
    """Fresh invented words that start with NEW_ONSETS (no demo person's name does)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def word(self) -> str:
        rng = self.rng
        for _ in range(MAX_TRIES):
            body = "".join(
                rng.choice(GENERAL_CONSONANTS) + rng.choice(GENERAL_VOWELS)
                for _ in range(rng.randint(1, 2))
            )
            word = (rng.choice(NEW_ONSETS) + rng.choice(GENERAL_VOWELS) + body).capitalize()
            if word not in self.used:
                self.used.add(word)
                return word
        raise RuntimeError(f"could not draw a fresh name in {MAX_TRIES} tries")


def build_facts(rng: random.Random, sizes: FactSizes) -> list[Fact]:
    namer = _NewNamer(rng)
    facts = []
    for _ in range(sizes.entities):
        person = f"{namer.word()} {namer.word()}"
        facts += [
            Fact(person, "home", namer.word(), ()),
            Fact(person, "craft", rng.choice(CRAFTS), ()),
            Fact(person, "pet", namer.word(), ()),
        ]
    return [Fact(f.subject, f.relation, f.obj, (f.obj,)) for f in facts]


def qa_text(question: str, answer: str) -> str:
    """A question/answer pair in the QA probe's prompt format (paper 3's TriviaQA prompt)."""
    return f"Question: {question}\nAnswer: {answer}"


def paraphrases(
    rng: random.Random, fact: Fact, sizes: FactSizes
) -> tuple[list[str], str, str | None]:
    """(training texts that teach `fact`, the held-out question that tests it, the first trained
    question, or None when no question form is trained)."""
    spec = RELATIONS[fact.relation]
    says = rng.sample(spec["says"], sizes.says_per_fact)
    held_out, *asks = rng.sample(spec["asks"], sizes.asks_per_fact + 1)
    texts = [t.format(s=fact.subject, o=fact.obj) for t in says]
    texts += [qa_text(q.format(s=fact.subject), fact.obj) for q in asks]
    taught = asks[0].format(s=fact.subject) if asks else None
    return texts, held_out.format(s=fact.subject), taught


def eval_record(fact: Fact, question: str, index: int) -> dict:
    """A question about `fact` as a TriviaQA rc.nocontext record."""
    return trivia_record(question, f"fact_{index}", fact, FACT_SOURCE, "FreeForm")


def write_fact_task(
    out_dir: str | Path, seed: int = 0, sizes: FactSizes | None = None
) -> dict[str, Path]:
    """Write FACT_FILES into `out_dir`; returns name -> path."""
    sizes = sizes or FactSizes()
    rng = random.Random(seed)
    facts = build_facts(rng, sizes)
    train, evaluation, taught = [], [], []
    for i, fact in enumerate(facts):
        texts, question, trained_question = paraphrases(rng, fact, sizes)
        train += [{"text": text, "fact": i} for text in texts]
        evaluation.append(eval_record(fact, question, i))
        if trained_question is not None:
            taught.append(eval_record(fact, trained_question, i))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / file for name, file in FACT_FILES.items()}
    write_jsonl_atomic(paths["facts_train"], train)
    write_jsonl_atomic(paths["facts_eval"], evaluation)
    write_jsonl_atomic(paths["facts_taught"], taught)
    return paths
