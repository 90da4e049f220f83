"""Issue 27's task from cached base answers (rule real_fact_task): no model, synthetic cache;
the fixture's questions when present."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from smf.tasks.real_fact_task import build_real_fact_task, selection_pool, write_task_from_answers
from smf.tasks.real_fact_templates import REAL_FACT_FILES, held_out_leaks, held_out_pieces
from smf.tasks.real_facts import answer_keys, is_correct, question_key, whole_word_correct

REAL = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "real"
FIXTURE = (
    Path(os.environ.get("SMF_REAL_FIXTURES", REAL)) / "triviaqa/llm_foundry/triviaqa_sm_sub.jsonl"
)
# config/schema.yaml's real_fact_task defaults, sized down
SPEC = {
    "dataset": "triviaqa",
    "records": 60,
    "prompts": ["paper3", "chat"],
    "known_prompt": "paper3",
    "n_facts": 12,
    "n_known": 6,
    "max_answer_words": 4,
    "max_gold_logprob": None,
    "trained": ["quiz", "trivia", "qa_short", "answer_first", "answer_last", "chat"],
    "held_out": "plain",
    "taught": "quiz",
    "seed": 0,
    "max_new_tokens": 16,
    "batch_size": 16,
}


def cached_answers(n: int = 60) -> list[dict]:
    """Rows as smf.probes.base_answers writes them: every third right under paper3, every
    fifth (of the others) right only under chat; one wrong answer repeats a right one's."""
    rows = []
    for i in range(n):
        answer = f"answer{i}"
        right = i % 3 == 0
        rows.append(
            {
                "id": f"triviaqa-{i}",
                "question": f"What is thing number {i}?",
                "answer": answer,
                "aliases": [answer, f"alias {i}"],
                "output": f" {answer} indeed" if right else " no idea",
                "chat_output": f"It is {answer}." if right or i % 5 == 0 else "Sorry.",
                "gold_logprob": -2.0 if right else -16.0,
                "gold_tokens": 2,
            }
        )
    rows[1]["answer"] = "answer0"  # wrong, but shares an answer with a right question
    rows[1]["aliases"] = ["answer0"]
    return rows


def fixture_answers(n: int = 40) -> list[dict]:
    """The fixture's first n questions with made-up outputs: right (the gold answer) for every
    fourth, else wrong."""
    if not FIXTURE.is_file():
        pytest.skip(f"real fixtures not found at {FIXTURE}")
    rows = []
    with FIXTURE.open() as fh:
        for i, line in zip(range(n), fh, strict=False):
            rec = json.loads(line)
            question = rec["context"].removeprefix("Question: ").removesuffix("\nAnswer:")
            out = f" {rec['answer']}" if i % 4 == 0 else " Nothing I know"
            rows.append(
                {
                    "id": f"triviaqa-{i}",
                    "question": question,
                    "answer": rec["answer"],
                    "aliases": rec["aliases"],
                    "output": out,
                    "gold_logprob": -3.0,
                    "gold_tokens": 1,
                }
            )
    return rows


def check_split(task: dict, report: dict, answers: list[dict], spec: dict) -> None:
    by_id = {r["id"]: r for r in answers}
    facts = [by_id[i] for i in report["fact_ids"]]
    known = [by_id[i] for i in report["known_ids"]]
    assert len(facts) == spec["n_facts"] and len(known) == spec["n_known"]
    for row in facts:  # wrong under every cached prompt
        for field in ("output", "chat_output"):
            if field in row:
                assert not is_correct(row[field], row["aliases"]), row
    field = {"paper3": "output", "chat": "chat_output"}[spec["known_prompt"]]
    for row in known:
        assert is_correct(row[field], row["aliases"]) and whole_word_correct(
            row[field], row["aliases"]
        )
    assert not {question_key(r) for r in facts} & {question_key(r) for r in known}
    fact_answers = set().union(*(answer_keys(r) for r in facts))
    assert not fact_answers & set().union(*(answer_keys(r) for r in known))
    # the held-out wording is in no training text
    assert not held_out_leaks(task)
    texts = [row["text"] for row in task["facts_train"]]
    for row in facts:
        for piece in held_out_pieces(row["question"]):
            assert not any(piece in text for text in texts)
    assert len(texts) == len(facts) * len(spec["trained"])
    assert [r["answer"]["value"] for r in task["facts_eval"]] == [r["answer"] for r in facts]


@pytest.mark.parametrize("known_prompt", ["paper3", "chat"])
def test_facts_wrong_known_right_disjoint(known_prompt: str) -> None:
    answers = cached_answers()
    spec = {**SPEC, "known_prompt": known_prompt}
    task, report = build_real_fact_task(answers, spec)
    check_split(task, report, answers, spec)
    assert report["chance_facts"] < 0.05


def test_chat_only_right_rows_are_neither_facts_nor_known() -> None:
    answers = cached_answers()
    pool = {r["id"] for r in selection_pool(answers, ["paper3", "chat"], "paper3")}
    chat_only = {r["id"] for i, r in enumerate(answers) if i % 3 and i % 5 == 0}
    assert chat_only and not pool & chat_only
    assert len(selection_pool(answers, ["paper3"], "paper3")) == len(answers)


def test_same_seed_same_files(tmp_path: Path) -> None:
    answers = cached_answers()
    write_task_from_answers(answers, SPEC, tmp_path / "a")
    write_task_from_answers(answers, SPEC, tmp_path / "b")
    write_task_from_answers(answers, {**SPEC, "seed": 1}, tmp_path / "c")
    for file in [*REAL_FACT_FILES.values(), "selection.json"]:
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()
    assert (tmp_path / "a/facts_train.jsonl").read_bytes() != (
        tmp_path / "c/facts_train.jsonl"
    ).read_bytes()


def test_shortfall_names_the_config_key() -> None:
    answers = cached_answers()
    with pytest.raises(ValueError, match=r"real_fact_task\.n_known: 50 wanted, \d+ usable right"):
        build_real_fact_task(answers, {**SPEC, "n_known": 50})
    with pytest.raises(ValueError, match=r"records 0-59; raise real_fact_task\.records"):
        build_real_fact_task(answers, {**SPEC, "n_facts": 45})
    with pytest.raises(ValueError, match=r"real_fact_task\.records: 61 wanted"):
        build_real_fact_task(answers, {**SPEC, "records": 61})
    with pytest.raises(ValueError, match="known_prompt"):
        build_real_fact_task(answers, {**SPEC, "prompts": ["paper3"], "known_prompt": "chat"})


def test_fixture_questions() -> None:
    answers = fixture_answers()
    spec = {**SPEC, "records": 40, "prompts": ["paper3"], "n_facts": 10, "n_known": 4}
    task, report = build_real_fact_task(answers, spec)
    check_split(task, report, answers, spec)


def test_check_spec_names_the_key() -> None:
    from smf.tasks.real_fact_task import check_spec

    data = {"triviaqa": {"kind": "qa"}, "wikitext": {"kind": "text"}}
    check_spec(SPEC, data)
    with pytest.raises(ValueError, match=r"real_fact_task\.dataset: 'wikitext'"):
        check_spec({**SPEC, "dataset": "wikitext"}, data)
    with pytest.raises(ValueError, match=r"real_fact_task\.known_prompt"):
        check_spec({**SPEC, "prompts": ["paper3"], "known_prompt": "chat"}, data)
    with pytest.raises(ValueError, match=r"real_fact_task\.trained/held_out/taught: .*held-out"):
        check_spec({**SPEC, "trained": [*SPEC["trained"], "plain"]}, data)
