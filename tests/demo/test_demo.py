"""Tests for the offline demo world, tokenizer and tiny Qwen2 config (smf.demo.datasets,
smf.demo.world)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from smf.data.prompts import MCQ_HEADER
from smf.demo.datasets import DEMO_FILES, normalize_trivia_answer, write_demo_world
from smf.demo.model import (
    EOS_TOKEN,
    PAD_TOKEN,
    build_tokenizer,
    tiny_qwen2_config,
    tiny_qwen2_config_for,
    tokenizer_training_texts,
)
from smf.demo.words import EVERYDAY_RELATIONS, QUESTIONS, XENO_RELATIONS
from smf.demo.world import DemoSizes

GENERAL_TEXT_FILES = ("pretrain", "background", "wikitext_test", "oasst1")


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z]+", text)}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    return write_demo_world(tmp_path_factory.mktemp("demo"), seed=0)


@pytest.fixture(scope="module")
def records(world) -> dict[str, list[dict]]:
    return {name: read_jsonl(path) for name, path in world.items()}


@pytest.fixture(scope="module")
def demo_tokenizer(world):
    return build_tokenizer(tokenizer_training_texts(world), vocab_size=512)


def test_writes_all_files_with_default_sizes(world, records):
    sizes = DemoSizes()
    assert set(world) == set(DEMO_FILES)
    assert all(path.name == DEMO_FILES[name] for name, path in world.items())
    assert len(records["medmcqa_train"]) == sizes.mcq_train
    assert len(records["medmcqa_validation"]) == sizes.mcq_validation
    assert len(records["triviaqa_validation"]) == sizes.trivia
    assert len(records["background"]) == sizes.background_docs
    assert len(records["oasst1"]) == 4 * sizes.oasst_trees
    texts = [r["text"] for r in records["pretrain"]]
    questions = [t for t in texts if t.startswith("Question: ")]
    articles = [t for t in texts if t.startswith("= ")]
    assert len(articles) == sizes.n_entities * sizes.pretrain_articles_per_entity
    known = sizes.known_plants * len(XENO_RELATIONS)
    known_texts = known * (sizes.known_says_per_fact + sizes.known_mcqs_per_fact)
    assert len(texts) == len(articles) + len(questions) + known_texts
    # the trivia questions, and every form of question about each person's everyday facts
    everyday = sizes.people * sum(len(QUESTIONS[r]) for r in EVERYDAY_RELATIONS)
    assert len(set(questions)) == len(questions)
    asked = {q.split("\n")[0].removeprefix("Question: ") for q in questions}
    trivia = {r["question"] for r in records["triviaqa_validation"]}
    assert asked == trivia | everyday_questions(asked)
    assert len(everyday_questions(asked)) == everyday
    assert not list(world["pretrain"].parent.glob(".*.tmp"))  # atomic writes leave no temp files


def everyday_questions(questions: set[str]) -> set[str]:
    forms = [f.split("{s}") for r in EVERYDAY_RELATIONS for f in QUESTIONS[r]]
    return {q for q in questions if any(q.startswith(a) and q.endswith(b) for a, b in forms)}


def test_same_seed_same_bytes_other_seed_differs(tmp_path, world):
    again = write_demo_world(tmp_path / "again", seed=0)
    other = write_demo_world(tmp_path / "other", seed=1)
    for name in DEMO_FILES:
        assert again[name].read_bytes() == world[name].read_bytes(), name
    assert other["pretrain"].read_bytes() != world["pretrain"].read_bytes()


def test_medmcqa_schema(records):
    keys = {"id", "question", "opa", "opb", "opc", "opd", "cop", "choice_type", "exp"}
    keys |= {"subject_name", "topic_name"}
    for split in ("medmcqa_train", "medmcqa_validation"):
        ids = set()
        for i, r in enumerate(records[split]):
            assert set(r) == keys, (split, i)
            options = [r["opa"], r["opb"], r["opc"], r["opd"]]
            assert all(isinstance(o, str) and o.strip() for o in options), (split, i)
            assert len(set(options)) == 4, (split, i)
            assert r["cop"] in range(4), (split, i)
            assert r["choice_type"] == "single"
            if r["exp"] is not None:  # the explanation states the gold option
                assert options[r["cop"]] in r["exp"], (split, i)
            ids.add(r["id"])
        assert len(ids) == len(records[split])
    gold = [r["cop"] for r in records["medmcqa_train"]]
    assert len(set(gold)) == 4  # the gold letter is not constant


TRAIN_STEMS = {t for spec in XENO_RELATIONS.values() for t in spec["train"]}


def plant_and_gold(record: dict) -> tuple[str, str]:
    """(plant named in the question, gold option) of a xenobotany MCQ record."""
    for stem in TRAIN_STEMS:
        pattern = re.escape(stem).replace(re.escape("{s}"), r"(\S+?)")
        match = re.fullmatch(pattern, record["question"])
        if match:
            options = [record["opa"], record["opb"], record["opc"], record["opd"]]
            return match.group(1), options[record["cop"]]
    raise AssertionError(f"no stem matches {record['question']!r}")


def test_every_fact_is_taught_and_validation_asks_taught_facts_once(records):
    sizes = DemoSizes()
    taught = [plant_and_gold(r) for r in records["medmcqa_train"]]
    assert len(set(taught)) == sizes.n_xeno_facts
    validation = [plant_and_gold(r) for r in records["medmcqa_validation"]]
    assert len(set(validation)) == len(validation)
    assert set(validation) <= set(taught)


def test_validation_needs_the_fact_not_the_trained_option_order(records):
    """Validation draws fresh distractors in a fresh order: (almost) no validation question
    shows the options, in the order, that a training question about its fact showed."""
    trained_orders: dict[tuple[str, str], set[tuple[str, ...]]] = {}
    for r in records["medmcqa_train"]:
        order = (r["opa"], r["opb"], r["opc"], r["opd"])
        trained_orders.setdefault(plant_and_gold(r), set()).add(order)
    fresh = [
        (r["opa"], r["opb"], r["opc"], r["opd"]) not in trained_orders[plant_and_gold(r)]
        for r in records["medmcqa_validation"]
    ]
    assert sum(fresh) >= len(fresh) * 0.95


def test_the_tasks_plants_are_absent_from_general_text(records):
    general = " ".join(
        r["text"] for name in GENERAL_TEXT_FILES for r in records[name] if r["text"]
    ).lower()
    vocab = words(general)
    for i, r in enumerate(records["medmcqa_validation"] + records["medmcqa_train"]):
        plant, _ = plant_and_gold(r)
        assert plant.lower() not in vocab, (i, plant)
        for option in (r["opa"], r["opb"], r["opc"], r["opd"]):
            assert option.lower() not in general, (i, option)
            assert option.split()[0].lower() not in vocab, (i, option)  # the invented word


def test_known_plants_are_stated_and_asked_in_the_pretraining_text(records):
    """The pretraining text teaches other plants: facts stated, then asked as answered exam
    questions (paper 3's training text) whose explanation states the fact."""
    sizes = DemoSizes()
    pretrain = [r["text"] for r in records["pretrain"]]
    exams = [t for t in pretrain if t.startswith(MCQ_HEADER)]
    n_known_facts = sizes.known_plants * len(XENO_RELATIONS)
    assert len(exams) == n_known_facts * sizes.known_mcqs_per_fact
    statements = set(pretrain)
    for text in exams:
        explanation = text.split("\nExplanation: ")[1]
        answer = text.split("\nAnswer: ")[1].split("\n")[0][3:]  # "B. option" -> option
        assert answer in explanation and explanation in statements, text
        assert pretrain.count(explanation) == sizes.known_says_per_fact


def test_trivia_schema_and_answers_in_pretrain(records):
    pretrain = [r["text"] for r in records["pretrain"]]
    articles = "\n".join(t for t in pretrain if not t.startswith("Question:"))
    qa_docs = set(pretrain)
    ids = set()
    for i, r in enumerate(records["triviaqa_validation"]):
        answer = r["answer"]
        assert r["question"].endswith("?") and r["question_source"] == "demo"
        assert answer["value"] in answer["aliases"], i
        assert answer["normalized_aliases"] == [
            normalize_trivia_answer(a) for a in answer["aliases"]
        ]
        assert answer["normalized_value"] == normalize_trivia_answer(answer["value"])
        assert f"Question: {r['question']}\nAnswer: {answer['value']}" in qa_docs, i
        assert answer["value"] in articles, i  # the fact is also in the encyclopedic text
        ids.add(r["question_id"])
    assert len(ids) == len(records["triviaqa_validation"])


def test_normalize_trivia_answer_matches_official_rules():
    assert normalize_trivia_answer("The_Sunset  Boulevard!") == "sunset boulevard"
    assert normalize_trivia_answer("A. B. Smith's") == "b smith s"


def test_wikitext_rows_look_like_hf_rows_and_are_held_out(records):
    rows = [r["text"] for r in records["wikitext_test"]]
    assert rows[0] == "" and rows[-1] == ""
    titles = [t for t in rows if re.fullmatch(r" = [^=]+ = \n", t)]
    assert len(titles) == DemoSizes().wiki_articles
    assert any(re.fullmatch(r" = = [^=]+ = = \n", t) for t in rows)
    for i, row in enumerate(rows):
        assert row == "" or (row.startswith(" ") and row.endswith(" \n")), i
        if row.startswith(" = "):
            assert rows[i - 1] == "" and rows[i + 1] == "", i  # headings framed by blank rows
    paragraphs = {t.strip() for t in rows if t.strip() and not t.startswith(" =")}
    assert all(" ." in p for p in paragraphs)  # WikiText-103 punctuation spacing
    seen = {
        p
        for name in ("pretrain", "background")
        for r in records[name]
        for p in r["text"].split("\n\n")
    }
    assert not paragraphs & seen


def test_oasst_rows_give_the_filters_work(records):
    rows = records["oasst1"]
    keys = {"message_id", "parent_id", "message_tree_id", "text", "role", "lang", "rank"}
    assert all(set(r) == keys for r in rows)
    prompters = {r["message_id"] for r in rows if r["role"] == "prompter"}
    assistants = [r for r in rows if r["role"] == "assistant"]
    assert all(r["parent_id"] in prompters for r in assistants)
    assert all(
        r["parent_id"] is None and r["rank"] is None for r in rows if r["role"] == "prompter"
    )
    kept = [r for r in assistants if r["lang"] == "en" and r["rank"] in (0, 1)]
    assert kept and all(len(r["text"]) >= 50 for r in kept)
    assert any(r["lang"] != "en" for r in assistants)
    assert any(r["rank"] == 2 for r in assistants) and any(r["rank"] is None for r in assistants)
    assert len(kept) < len(assistants)


def test_files_load_with_hf_json_loader(world, tmp_path):
    datasets = pytest.importorskip("datasets")
    for name, path in world.items():
        ds = datasets.load_dataset(
            "json", data_files=str(path), split="train", cache_dir=str(tmp_path)
        )
        assert len(ds) == len(read_jsonl(path)), name
    ds = datasets.load_dataset(
        "json", data_files=str(world["triviaqa_validation"]), split="train", cache_dir=str(tmp_path)
    )
    assert ds[0]["answer"]["value"] in ds[0]["answer"]["aliases"]


@pytest.mark.parametrize(
    "bad",
    [
        dict(mcq_train=10),
        dict(trivia=10_000),
        dict(cities=1),
        dict(plants=0),
        dict(people=2),
        dict(known_plants=2),
        dict(known_mcqs_per_fact=4),
    ],
)
def test_sizes_reject_impossible_worlds(bad):
    with pytest.raises(ValueError, match="DemoSizes"):
        DemoSizes(**bad)


def test_small_sizes_work(tmp_path):
    sizes = DemoSizes(
        countries=3, cities=4, people=3, rivers=2, plants=5, known_plants=4, mcq_train=20,
        mcq_validation=5,
        trivia=10, wiki_articles=3, background_docs=5, oasst_trees=4,
    )  # fmt: skip
    paths = write_demo_world(tmp_path, seed=3, sizes=sizes)
    assert len(read_jsonl(paths["medmcqa_validation"])) == 5
    assert len(read_jsonl(paths["oasst1"])) == 16


def test_tokenizer_round_trip_and_special_tokens(world, demo_tokenizer, tmp_path):
    tok = demo_tokenizer
    assert len(tok) == 512
    assert tok.eos_token == EOS_TOKEN and tok.bos_token == EOS_TOKEN and tok.pad_token == PAD_TOKEN
    assert tok.eos_token_id != tok.pad_token_id
    text = read_jsonl(world["pretrain"])[0]["text"] + "\nAnswer: B. x , y . 42 ~!@#$%^&*()"
    ids = tok(text)["input_ids"]
    assert EOS_TOKEN not in tok.convert_ids_to_tokens(ids)  # no bos/eos added on encode
    assert tok.decode(ids) == text
    article = read_jsonl(world["pretrain"])[0]["text"]
    assert len(tok(article)["input_ids"]) < 0.7 * len(article)  # merges were learned

    tok.save_pretrained(tmp_path / "tok")
    from transformers import AutoTokenizer

    loaded = AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert loaded(text)["input_ids"] == ids
    assert loaded.decode(ids) == text
    assert (loaded.eos_token_id, loaded.bos_token_id, loaded.pad_token_id) == (
        tok.eos_token_id,
        tok.bos_token_id,
        tok.pad_token_id,
    )
    assert loaded.model_max_length == 1024


def test_tokenizer_is_deterministic(world, demo_tokenizer):
    again = build_tokenizer(tokenizer_training_texts(world), vocab_size=512)
    assert again.get_vocab() == demo_tokenizer.get_vocab()
    assert again.backend_tokenizer.to_str() == demo_tokenizer.backend_tokenizer.to_str()


def test_tokenizer_rejects_bad_input():
    with pytest.raises(ValueError, match="vocab_size"):
        build_tokenizer(["hello"], vocab_size=100)
    with pytest.raises(ValueError, match="no training texts"):
        build_tokenizer([])


def test_tiny_qwen2_config_builds_a_tied_model(demo_tokenizer):
    from transformers import Qwen2ForCausalLM

    config = tiny_qwen2_config_for(demo_tokenizer, hidden_size=64, intermediate_size=128)
    assert config.vocab_size == len(demo_tokenizer)
    assert config.eos_token_id == demo_tokenizer.eos_token_id
    assert config.pad_token_id == demo_tokenizer.pad_token_id
    assert config.tie_word_embeddings
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).eval()
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    ids = demo_tokenizer("The capital of", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    assert logits.shape == (1, ids.shape[1], len(demo_tokenizer))


def test_tiny_qwen2_config_rejects_bad_heads():
    with pytest.raises(ValueError, match="num_heads"):
        tiny_qwen2_config(300, hidden_size=130, num_heads=4)
    with pytest.raises(ValueError, match="num_kv_heads"):
        tiny_qwen2_config(300, num_heads=4, num_kv_heads=3)
