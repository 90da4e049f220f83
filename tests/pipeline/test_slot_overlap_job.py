"""Rule slot_overlap's job (smf.pipeline.real_fact_jobs.slot_overlap) on a tiny retrofit model
and fixture probe files: facts paired by id, the sample size honoured, the JSON's fields, and
a fact missing from one file named as an error."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from conftest import make_tiny_qwen2

from smf.data.prompts import qa_prompt
from smf.method.memory import MemoryConfig
from smf.method.retrofit import RetrofitConfig, load_retrofitted, retrofit, save_memory
from smf.pipeline import real_fact_jobs
from smf.tasks.real_fact_templates import FRAMES, probe_record
from smf.training.slot_overlap import answer_slot_overlap

FACTS = [
    {"question": q, "answer": a, "aliases": [a]}
    for q, a in [
        ("Who wrote Hamlet?", "Shakespeare"),
        ("What is the capital of France?", "Paris"),
        ("Which vitamin is fat soluble?", "D"),
        ("Who was the man behind The Chipmunks?", "David Seville"),
        ("Robert Boulter is an English what?", "actor"),
    ]
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture()
def retrofit_files(tmp_path: Path, tokenizer) -> tuple[Path, Path]:
    base = tmp_path / "base"
    model = make_tiny_qwen2(seed=0)
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    mem = MemoryConfig(hidden_size=64, n_keys=16, heads=2, topk=4, key_dim=16)
    retrofit(model, RetrofitConfig(layers=[1, 3], memory=mem), seed=0)
    memory = tmp_path / "retrofit" / "memory.safetensors"
    save_memory(model, memory)
    return base, memory


@pytest.fixture()
def probe_files(tmp_path: Path) -> tuple[Path, Path]:
    """The task's taught (quiz frame) and held-out (plain) files, the held-out one shuffled."""
    taught = [probe_record(rec, "quiz", i) for i, rec in enumerate(FACTS)]
    held_out = [probe_record(rec, "plain", i) for i, rec in enumerate(FACTS)]
    random.Random(1).shuffle(held_out)
    assert [r["question_id"] for r in held_out] != [r["question_id"] for r in taught]
    return (
        write_jsonl(tmp_path / "facts_taught.jsonl", taught),
        write_jsonl(tmp_path / "facts_eval.jsonl", held_out),
    )


def run(retrofit_files, probe_files, out: Path, facts: int) -> dict:
    base, memory = retrofit_files
    real_fact_jobs.slot_overlap(
        base, memory, *probe_files, out, facts=facts, device="cpu", batch_size=2, code="test"
    )
    return json.loads(out.read_text())


def test_overlap_pairs_facts_by_id(retrofit_files, probe_files, tokenizer, tmp_path):
    got = run(retrofit_files, probe_files, tmp_path / "slot_overlap.json", facts=3)
    assert got["facts"] == 3 and got["facts_requested"] == 3 and got["model"] == "retrofit"
    assert got["fact_ids"] == ["fact_0", "fact_1", "fact_2"]  # the taught file's first 3
    assert got["protocol"] == "paper3" and got["add_special_tokens"] is True
    # the QA probe's prompts of the same fact in both wordings, whatever the files' order
    pairs = [(qa_prompt(FRAMES["quiz"](r["question"])), qa_prompt(r["question"])) for r in FACTS]
    model = load_retrofitted(*retrofit_files)
    want = answer_slot_overlap(model, tokenizer, pairs[:3], add_special_tokens=True)
    assert set(got["layers"]) == {"1", "3"}
    for layer, summary in got["layers"].items():
        assert summary["pairs"] == 3 and summary["random_pairs"] == 6
        assert summary["matched_per_pair"] == pytest.approx(want[int(layer)]["matched_per_pair"])
        assert summary["matched"] == pytest.approx(want[int(layer)]["matched"])
        assert summary["random"] == pytest.approx(want[int(layer)]["random"])
        assert summary["ratio"] == pytest.approx(summary["matched"] / summary["random"])


def test_fewer_facts_than_asked_uses_all(retrofit_files, probe_files, tmp_path):
    got = run(retrofit_files, probe_files, tmp_path / "slot_overlap.json", facts=50)
    assert got["facts"] == len(FACTS) and got["facts_requested"] == 50
    assert all(s["random_pairs"] == 20 for s in got["layers"].values())


def test_a_fact_missing_from_one_file_is_named(retrofit_files, probe_files, tmp_path):
    taught, held_out = probe_files
    rows = [json.loads(line) for line in held_out.read_text().splitlines()]
    write_jsonl(held_out, [{**rows[0], "question_id": "fact_99"}, *rows[1:]])
    out = tmp_path / "slot_overlap.json"
    with pytest.raises(ValueError, match=r"facts_eval\.jsonl: no record for fact id"):
        run(retrofit_files, probe_files, out, facts=3)
    assert not out.exists()
    # a held-out fact the taught file lacks names the taught file
    write_jsonl(held_out, rows)
    write_jsonl(taught, [json.loads(line) for line in taught.read_text().splitlines()][:-1])
    with pytest.raises(ValueError, match=r"facts_taught\.jsonl: no record for fact id 'fact_4'"):
        real_fact_jobs.paired_prompts(taught, held_out, 3)
