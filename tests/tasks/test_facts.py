"""The demo's fact-learning task (paper 1's experiment on the demo world)."""

from __future__ import annotations

import json
import random
import re

import pytest

from smf.data.prepare import prepare_dataset
from smf.data.prompts import qa_correct_paper3
from smf.demo.datasets import write_demo_world
from smf.demo.words import EVERYDAY_RELATIONS, NEW_ONSETS
from smf.demo.world import DemoSizes, build_world
from smf.tasks.facts import RELATIONS, FactSizes, build_facts, write_fact_task


def _pattern(form: str) -> str:
    return re.escape(form).replace(re.escape("{s}"), r"\w+ \w+")


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return write_fact_task(tmp_path_factory.mktemp("facts"), seed=0, sizes=FactSizes(entities=20))


def test_one_held_out_question_per_fact_and_paraphrases_grouped(task):
    train, evaluation = _read(task["facts_train"]), _read(task["facts_eval"])
    assert len(evaluation) == 20 * 3
    assert len(train) == 20 * 3 * (4 + 2)
    facts = [r["fact"] for r in train]
    assert facts == sorted(facts)  # paraphrases of one fact are contiguous
    trained = "\n".join(r["text"] for r in train)
    for rec in evaluation:
        assert rec["question"] not in trained  # this fact is never asked in training...
        forms = [f for spec in RELATIONS.values() for f in spec["asks"]]
        (form,) = [f for f in forms if re.fullmatch(_pattern(f), rec["question"])]
        asked = re.findall(r"^Question: (.*)$", trained, flags=re.M)
        others = [q for q in asked if re.fullmatch(_pattern(form), q)]
        assert others  # ...but its question form is, about other people
        assert rec["answer"]["value"] in trained  # ... the fact itself is taught
        assert qa_correct_paper3(f" {rec['answer']['value']}.", rec["answer"]["aliases"])


def test_taught_form_asks_each_fact_in_one_of_its_trained_wordings(task):
    train, evaluation = _read(task["facts_train"]), _read(task["facts_eval"])
    taught = _read(task["facts_taught"])
    assert len(taught) == len(evaluation)
    by_fact: dict[int, list[str]] = {}
    for r in train:
        by_fact.setdefault(r["fact"], []).append(r["text"])
    for held_out, rec in zip(evaluation, taught, strict=True):
        fact = int(rec["question_id"].removeprefix("fact_"))
        assert rec["question_id"] == held_out["question_id"] and rec["answer"] == held_out["answer"]
        assert rec["question"] != held_out["question"]
        assert f"Question: {rec['question']}\nAnswer: {rec['answer']['value']}" in by_fact[fact]


def test_no_trained_question_form_means_no_taught_records(tmp_path):
    paths = write_fact_task(tmp_path, sizes=FactSizes(entities=2, asks_per_fact=0))
    assert _read(paths["facts_eval"]) and not _read(paths["facts_taught"])


def test_new_people_never_occur_in_the_demo_world(task, tmp_path):
    """The world's homes and pets share the new people's first letters; its people do not."""
    world = write_demo_world(tmp_path / "world", seed=0)
    world_text = " ".join(p.read_text() for p in world.values())
    facts = build_facts(random.Random(0), FactSizes(entities=20))
    people = {f.subject for f in facts}
    assert len(people) == 20 and not any(person in world_text for person in people)
    world_people = {f.subject for f in build_world(random.Random(0), DemoSizes()).facts
                    if f.relation in EVERYDAY_RELATIONS}  # fmt: skip
    assert not any(word[0].lower() in NEW_ONSETS for p in world_people for word in p.split())


def test_same_seed_same_bytes_other_seed_other_facts(task, tmp_path):
    again = write_fact_task(tmp_path / "a", seed=0, sizes=FactSizes(entities=20))
    other = write_fact_task(tmp_path / "b", seed=1, sizes=FactSizes(entities=20))
    for name in task:
        assert again[name].read_bytes() == task[name].read_bytes()
        assert other[name].read_bytes() != task[name].read_bytes()


def test_files_load_through_the_real_loaders(task):
    records, stats = prepare_dataset(
        {"name": "facts_eval", "kind": "qa", "source": {"path": str(task["facts_eval"])}}
    )
    assert len(records) == 60 and records[0]["aliases"]
    texts, _ = prepare_dataset(
        {"name": "facts_train", "kind": "text", "source": {"path": str(task["facts_train"])}}
    )
    assert len(texts) == 360


def test_sizes_are_checked():
    with pytest.raises(ValueError, match="says_per_fact"):
        FactSizes(says_per_fact=9)
    with pytest.raises(ValueError, match="at least one"):
        FactSizes(says_per_fact=0, asks_per_fact=0)
