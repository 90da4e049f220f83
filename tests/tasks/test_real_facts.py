"""Real-fact selection and templates (issue 27): fast, no model; fixture records when present."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from smf.data.prompts import qa_correct_paper3, qa_prompt
from smf.tasks.real_fact_templates import (
    DEFAULT_TRAINED,
    build_task,
    check_wordings,
    held_out_leaks,
    held_out_pieces,
    write_real_fact_task,
)
from smf.tasks.real_facts import (
    SelectionSizes,
    answer_keys,
    join_cached,
    question_key,
    random_answer_chance,
    select_facts,
    whole_word_correct,
)

# ../shared/fixtures/real beside the checkout, as conftest.REAL_FIXTURES; a worktree elsewhere
# points SMF_REAL_FIXTURES at it
REAL = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "real"
FIXTURE = (
    Path(os.environ.get("SMF_REAL_FIXTURES", REAL)) / "triviaqa/llm_foundry/triviaqa_sm_sub.jsonl"
)


def synthetic_rows(n: int = 60) -> list[dict]:
    """Cached answers: every third question right; one wrong answer repeats a right one's."""
    rows = []
    for i in range(n):
        answer = f"answer{i}"
        right = i % 3 == 0
        rows.append(
            {
                "id": f"q{i}",
                "question": f"What is thing number {i}?",
                "answer": answer,
                "aliases": [answer, f"alias {i}"],
                "output": f" {answer} indeed" if right else " no idea",
                "gold_logprob": -1.0 if right else -8.0,
                "gold_tokens": 2,
            }
        )
    rows[1]["answer"] = "answer0"  # wrong, but shares an answer with a right question
    rows[1]["aliases"] = ["answer0"]
    rows[2]["answer"] = "four five six seven eight"  # too long to teach
    rows[2]["aliases"] = [rows[2]["answer"]]
    return rows


def fixture_rows(n: int = 400) -> list[dict]:
    """Fixture records with made-up cached outputs: right for every fourth, else wrong."""
    from smf.data.prepare import FOUNDRY_CONTEXT

    rows = []
    with FIXTURE.open() as fh:
        for i, line in zip(range(n), fh, strict=False):
            raw = json.loads(line)
            question = FOUNDRY_CONTEXT.match(raw["context"])["question"]
            output = raw["answer"] if i % 4 == 0 else "I do not know"
            rows.append(
                {
                    "id": f"triviaqa-{i}",
                    "question": question,
                    "answer": raw["answer"],
                    "aliases": raw["aliases"],
                    "output": output,
                    "gold_logprob": -5.0,
                }
            )
    return rows


def check_split(split) -> None:
    """The selection's invariants: F wrong, K right, nothing shared."""
    for fact in split.facts:
        assert not qa_correct_paper3(fact["output"], fact["aliases"])
    for known in split.known:
        assert qa_correct_paper3(known["output"], known["aliases"])
    assert not {question_key(r) for r in split.facts} & {question_key(r) for r in split.known}
    fact_answers = set().union(*(answer_keys(r) for r in split.facts))
    known_answers = set().union(*(answer_keys(r) for r in split.known))
    assert not fact_answers & known_answers


def test_selection_invariants_synthetic():
    split = select_facts(synthetic_rows(), SelectionSizes(n_facts=30, n_known=15))
    check_split(split)
    assert len(split.facts) == 30 and len(split.known) == 15
    ids = {r["id"] for r in split.facts}
    assert "q2" not in ids  # answer longer than max_answer_words
    assert "q1" not in ids  # shares its answer with K's q0
    assert split.counts["right"] == 20


def test_selection_deterministic_and_seeded():
    rows = synthetic_rows()
    sizes = SelectionSizes(n_facts=20, n_known=10)
    first = select_facts(rows, sizes, seed=3)
    again = select_facts(rows, sizes, seed=3)
    other = select_facts(rows, sizes, seed=4)
    assert [r["id"] for r in first.facts] == [r["id"] for r in again.facts]
    assert [r["id"] for r in first.facts] != [r["id"] for r in other.facts]


def test_selection_too_few_right_raises():
    with pytest.raises(ValueError, match="answers right"):
        select_facts(synthetic_rows(), SelectionSizes(n_facts=5, n_known=50))


def test_gold_logprob_filter_drops_near_misses():
    rows = synthetic_rows()
    rows[4]["gold_logprob"] = -0.2  # wrong, but nearly known (mean -0.1 per token)
    split = select_facts(rows, SelectionSizes(n_facts=5, n_known=5, max_gold_logprob=-1.0))
    assert "q4" not in {r["id"] for r in split.facts}


def test_join_cached_needs_every_answer():
    rows = synthetic_rows(6)
    records = [{k: r[k] for k in ("id", "question", "answer", "aliases")} for r in rows]
    cached = [{"id": r["id"], "output": r["output"], "gold_logprob": -1.0} for r in rows]
    assert join_cached(records, cached)[0]["output"] == rows[0]["output"]
    with pytest.raises(ValueError, match="no cached answer"):
        join_cached(records, cached[1:])


def test_templates_held_out_never_trained_and_deterministic(tmp_path):
    split = select_facts(synthetic_rows(), SelectionSizes(n_facts=30, n_known=15))
    task = build_task(split.facts, split.known)
    assert task == build_task(split.facts, split.known)
    assert len(task["facts_train"]) == 30 * len(DEFAULT_TRAINED) >= 30 * 6
    assert not held_out_leaks(task)
    for rec in task["facts_eval"]:
        for piece in held_out_pieces(rec["question"]):
            assert all(piece not in row["text"] for row in task["facts_train"])
    # the taught probe's prompt is the start of one of that fact's training texts
    for i, rec in enumerate(task["facts_taught"]):
        texts = [r["text"] for r in task["facts_train"] if r["fact"] == i]
        assert any(t.startswith(qa_prompt(rec["question"]) + " ") for t in texts)
    paths = write_real_fact_task(tmp_path, task)
    first = {k: p.read_bytes() for k, p in paths.items()}
    paths = write_real_fact_task(tmp_path, build_task(split.facts, split.known))
    assert first == {k: p.read_bytes() for k, p in paths.items()}


def test_written_probes_read_by_prepare_qa(tmp_path):
    datasets = pytest.importorskip("datasets")
    from smf.data.prepare import prepare_qa

    split = select_facts(synthetic_rows(), SelectionSizes(n_facts=10, n_known=5))
    paths = write_real_fact_task(tmp_path, build_task(split.facts, split.known))
    ds = datasets.load_dataset("json", data_files=str(paths["facts_eval"]), split="train")
    records, _ = prepare_qa(ds, name="facts")
    assert [r["answer"] for r in records] == [r["answer"] for r in split.facts]


def test_wordings_checked():
    with pytest.raises(ValueError, match="held-out"):
        check_wordings((*DEFAULT_TRAINED, "plain"), "plain", "quiz")
    with pytest.raises(ValueError, match="at least 6"):
        check_wordings(DEFAULT_TRAINED[:5], "plain", "quiz")
    with pytest.raises(ValueError, match="taught"):
        check_wordings(("trivia", "qa_short", "answer_first", "answer_last", "chat",
                        "question_line"), "plain", "quiz")  # fmt: skip


def test_chance_baseline():
    records = [{"answer": a, "aliases": [a]} for a in ("Paris", "Paris Hilton", "Rome")]
    # "Paris Hilton" contains "Paris": 1 hit of 6 ordered pairs
    assert random_answer_chance(records) == pytest.approx(1 / 6)


@pytest.mark.skipif(not FIXTURE.is_file(), reason=f"fixture {FIXTURE} absent")
def test_selection_on_fixture_records():
    split = select_facts(fixture_rows(), SelectionSizes(n_facts=150, n_known=60))
    check_split(split)
    task = build_task(split.facts, split.known)
    assert not held_out_leaks(task)
    assert random_answer_chance(split.facts) < 0.05


def test_chat_wording_is_smollm2_template(smollm2_gguf):
    from transformers import AutoTokenizer

    from smf.tasks.real_fact_templates import CHATML, training_text

    tokenizer = AutoTokenizer.from_pretrained(smollm2_gguf.parent, gguf_file=smollm2_gguf.name)
    turns = [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A"}]
    assert training_text("chat", "Q?", "A") == CHATML.format(q="Q?", a="A")
    assert CHATML.format(q="Q?", a="A") == tokenizer.apply_chat_template(turns, tokenize=False)


def test_known_needs_whole_word_answer():
    rows = synthetic_rows()
    rows[3]["output"] = " answer30 and more"  # substring "answer3" but not the word
    split = select_facts(rows, SelectionSizes(n_facts=5, n_known=5))
    assert "q3" not in {r["id"] for r in split.known}
    assert split.counts["right"] == 20 and split.counts["right_usable"] == 19
    assert whole_word_correct(" 1200 pounds", ["20"]) is False
    assert whole_word_correct(" It is Winnipeg.", ["Winnipeg"]) is True
