"""Text formats: exact strings on a record, and agreement with the real fixtures."""

from __future__ import annotations

import hashlib
import json

import pytest

from smf.data.prompts import (
    LETTERS,
    count_words,
    mcq_continuations,
    mcq_prompt,
    mcq_training_text,
    normalize_official,
    normalize_paper3,
    qa_correct_lm_eval,
    qa_correct_paper3,
    qa_prompt,
    truncate_at_stops,
    wikitext_detokenize,
    wikitext_documents,
    wikitext_paper3_text,
)

PAPER3_WIKITEXT_SHA256 = "b69f16fa47861447b00d3903a760a0e4532f63a663743c388767ffd6a022b1b6"

RECORD = {
    "id": "r1",
    "question": "Which vitamin is fat soluble?",
    "options": ["C", "B1", "D", "B12"],
    "answer": 2,
    "explanation": "  Vitamins A, D, E and K are fat soluble. ",
    "subject": "Biochemistry",
}


def test_mcq_training_text_exact() -> None:
    assert mcq_training_text(RECORD) == (
        "Medical exam question:\n"
        "Question: Which vitamin is fat soluble?\n"
        "A. C\nB. B1\nC. D\nD. B12\n"
        "Answer: C. D\n"
        "Explanation: Vitamins A, D, E and K are fat soluble."
    )


def test_mcq_training_text_without_explanation_and_custom_header() -> None:
    rec = {**RECORD, "explanation": "   "}
    text = mcq_training_text(rec, header="Law exam question:")
    assert text.startswith("Law exam question:\nQuestion:")
    assert text.endswith("Answer: C. D")
    assert "Explanation" not in text


def test_paper3_prompt_is_training_text_prefix_and_continuation_completes_it() -> None:
    prompt = mcq_prompt(RECORD)
    continuations = mcq_continuations(RECORD)
    assert prompt.endswith("\nAnswer:")
    assert continuations == [" A. C", " B. B1", " C. D", " D. B12"]
    training = mcq_training_text(RECORD)
    assert training.startswith(prompt + continuations[RECORD["answer"]])


def test_lm_eval_mcq_format() -> None:
    assert mcq_prompt(RECORD, protocol="lm_eval") == (
        "Question: Which vitamin is fat soluble?\nChoices:\nA. C\nB. B1\nC. D\nD. B12\nAnswer:"
    )
    assert mcq_continuations(RECORD, protocol="lm_eval") == [" A", " B", " C", " D"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"options": ["a", "b", "c"]}, "options"),
        ({"answer": 4}, "answer"),
        ({"answer": "2"}, "answer"),
    ],
)
def test_bad_mcq_record_names_the_field(change: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"r1.*{field}"):
        mcq_training_text({**RECORD, **change})


def test_unknown_protocol_rejected() -> None:
    with pytest.raises(ValueError, match="protocol"):
        qa_prompt("Q", protocol="helm")


def test_qa_prompts() -> None:
    question = "Who was the man behind The Chipmunks?"
    assert qa_prompt(question) == "Question: Who was the man behind The Chipmunks?\nAnswer:"
    assert qa_prompt(question, "lm_eval") == (
        "Question: Who was the man behind The Chipmunks??\nAnswer:"
    )


def test_normalize_paper3_keeps_dots_and_dashes() -> None:
    assert normalize_paper3("  The Sunset Blvd.,  (an) X-ray!  ") == "sunset blvd. x-ray"
    assert normalize_paper3("Théâtre") == "th tre"


def test_qa_correct_rules() -> None:
    assert qa_correct_paper3(" David Seville, the creator", ["David Seville"])
    assert not qa_correct_paper3(" Alvin", ["David Seville", ""])
    assert not qa_correct_paper3("anything", [""])  # an empty alias never matches
    assert truncate_at_stops(" Sunset Blvd. It premiered") == " Sunset Blvd"
    assert qa_correct_lm_eval(" sunset BLVD. It premiered", ["Sunset Blvd."])
    assert qa_correct_lm_eval(" David Seville\nmore", ["David Seville"])
    assert not qa_correct_lm_eval(" David Seville and the Chipmunks", ["David Seville"])
    # lm-eval's remove_whitespace filter strips both ends (a trailing " " no longer fails)
    assert qa_correct_lm_eval(" David Seville ,", ["David Seville"])


def test_wikitext_paper3_text_small() -> None:
    rows = ["", " = A = \n", "", " x . \n", " y \n"]
    assert wikitext_paper3_text(rows) == "= A =\n\nx .\n\ny"
    assert wikitext_paper3_text(rows, limit=2) == "= A =\n\nx ."


def test_wikitext_documents_small() -> None:
    rows = ["", " = A = \n", "", " a text \n", " = = Sec = = \n", " = B = \n", " b \n"]
    pages = wikitext_documents(rows)
    assert pages == [" = A = \n \n a text \n = = Sec = = ", " = B = \n b \n"]
    with pytest.raises(ValueError, match="row 1"):
        wikitext_documents(["", " no newline"])


def test_wikitext_detokenize() -> None:
    tokenized = (
        'He had a guest @-@ starring role , in 1 @,@ 000 films ( 3 @.@ 5 % ) . " Teddy \'s Story "'
    )
    assert wikitext_detokenize(tokenized) == (
        'He had a guest-starring role, in 1,000 films (3.5 %). "Teddy\'s Story"'
    )
    assert wikitext_detokenize(" = = = Film = = = \n") == " === Film ===\n"


# ---------------------------------------------------------------------------------------------
# Real fixtures
# ---------------------------------------------------------------------------------------------


def _read_jsonl(path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_wikitext_paper3_text_matches_real_protocol_string(real_fixtures) -> None:
    folder = real_fixtures / "wikitext" / "wikitext-103-v1_hf_rows"
    rows = [r["text"] for r in _read_jsonl(folder / "DERIVED_test.rows.jsonl")]
    assert len(rows) == 4358
    text = wikitext_paper3_text(rows, limit=1000)
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == PAPER3_WIKITEXT_SHA256
    expected = (folder / "DERIVED_smf_protocol_test_first1000_nonempty_joined.txt").read_bytes()
    assert text.encode("utf-8") == expected


def test_wikitext_documents_match_lm_eval_pages(real_fixtures) -> None:
    folder = real_fixtures / "wikitext" / "wikitext-2-raw-v1_test"
    # newline="\n": lines end only at "\n" and keep it, like the raw file's rows.
    with open(folder / "wiki.test.raw.RECONSTRUCTED", encoding="utf-8", newline="\n") as f:
        file_lines = f.readlines()
    assert len(file_lines) == 4358
    expected = [
        r["page"]
        for r in _read_jsonl(folder / "DERIVED_lm_eval_wikitext_document_level_test_pages.jsonl")
    ]

    pages = wikitext_documents(file_lines)
    assert len(pages) == 62
    assert pages == expected
    assert sum(count_words(page) for page in pages) == 241_335
    assert sum(len(page.encode("utf-8")) for page in pages) == 1_290_527

    # The HF rows write blank lines as "": they must give the same pages.
    hf_rows = ["" if line == " \n" else line for line in file_lines]
    assert wikitext_documents(hf_rows) == expected


def test_normalize_official_matches_triviaqa_sample(real_fixtures) -> None:
    path = real_fixtures / "triviaqa" / "official_sample" / "triviaqa_sample.json"
    answer = json.loads(path.read_text(encoding="utf-8"))["Data"][0]["Answer"]
    assert {normalize_official(alias) for alias in answer["Aliases"]} == set(
        answer["NormalizedAliases"]
    )
    assert normalize_official(answer["Value"]) == answer["NormalizedValue"]


def test_qa_correct_paper3_on_real_record(real_fixtures) -> None:
    records = _read_jsonl(real_fixtures / "triviaqa" / "llm_foundry" / "triviaqa_small.jsonl")
    chipmunks = records[0]
    assert chipmunks["context"] == qa_prompt("Who was the man behind The Chipmunks?")
    assert qa_correct_paper3(" David Seville, the creator", chipmunks["aliases"])
    assert not qa_correct_paper3(" Alvin Seville", chipmunks["aliases"])
    assert qa_correct_lm_eval(" David Seville, the creator", chipmunks["aliases"])


def test_mcq_prompt_on_real_medmcqa_record(real_fixtures) -> None:
    path = real_fixtures / "medmcqa" / "hf_datasets_dummy_original_format" / "dev.json"
    raw = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    rec = {
        "id": raw["id"],
        "question": raw["question"],
        "options": [raw["opa"], raw["opb"], raw["opc"], raw["opd"]],
        "answer": raw["cop"] - 1,  # the original release is 1-indexed
        "explanation": raw["exp"],
        "subject": raw["subject_name"],
    }
    text = mcq_training_text(rec)
    assert "\nAnswer: D. Cryptosporidium hominis\nExplanation: Ans. d." in text
    assert text.count("\n") >= 2 + len(LETTERS)
    assert text.startswith(mcq_prompt(rec) + mcq_continuations(rec)[3])
