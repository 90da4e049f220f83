"""Issue 27's real-fact rules: the experiment plans its jobs (dry run; the slot overlap's job:
tests/pipeline/test_slot_overlap_job.py), and the base model's cached answers on a few fixture
records (SmolLM2 GGUF; skipped without it or the fixtures)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import copy_workflow
from transformers import AutoModelForCausalLM, AutoTokenizer

from smf.data import prepare
from smf.pipeline import real_fact_jobs
from smf.probes.qa import qa_accuracy
from smf.tasks.real_fact_task import write_task_from_answers

SMOLLM2 = ["--configfile", "config/smollm2.yaml"]


def dry_run(root: Path, *targets: str, overlays: tuple[str, ...] = ()) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", *targets, *SMOLLM2, *overlays],
        cwd=root, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def job_counts(output: str) -> dict[str, int]:
    block = output.split("Job stats:")[1].split("\n\n")[0]
    return {name: int(n) for name, n in re.findall(r"^(\w+)\s+(\d+)$", block, flags=re.M)}


def test_real_facts_plans_its_jobs(tmp_path: Path) -> None:
    root = copy_workflow(tmp_path)
    out = dry_run(root, "real_facts")
    counts = job_counts(out)
    assert counts["real_fact_answers"] == counts["real_fact_task"] == 1
    # the taught and held-out wordings' slot overlap on the retrofit model (rule slot_overlap)
    assert counts["slot_overlap"] == 1
    assert "results/real_fact_task/slot_overlap.json" in out
    # every arm at its own rate and each sweep rate, for every seed, each evaluated on its 4
    # probes in one job
    cfg = yaml.safe_load((root / "config" / "smollm2.yaml").read_text())
    arms = cfg["experiments"]["real_facts"]["arms"]
    runs = sum(1 + len(spec.get("lr_sweep", [])) for spec in arms.values()) * len(cfg["seeds"])
    assert runs == 44  # 22 rates x 2 seeds (docs/results/real_facts.md ran seed 0)
    assert counts["finetune_full"] + counts["finetune_lora"] + counts["finetune_smf"] == runs
    assert counts["evaluate_real_facts"] == runs
    assert "results/real_facts/tables/main.csv" in out
    assert "results/real_fact_task/known_eval.jsonl" in out
    # not part of `all` in the SmolLM2 profile (run_experiments: [])
    plain = job_counts(dry_run(root))
    assert "real_fact_answers" not in plain and "slot_overlap" not in plain


def test_an_arm_may_give_its_own_run_more_seeds(tmp_path: Path) -> None:
    # issue 27: two seeds at an arm's own (middle) rate, one at its sweep points
    root = copy_workflow(tmp_path)
    overlay = {"seeds": [0], "experiments": {"real_facts": {"arms": {"lora": {"seeds": [0, 1]}}}}}
    (root / "config" / "seeds.yaml").write_text(yaml.safe_dump(overlay))
    out = dry_run(root, "real_facts", overlays=("config/seeds.yaml",))
    counts = job_counts(out)
    assert counts["finetune_lora"] == 2 + 5  # its own rate twice, its 5 sweep rates once
    assert counts["finetune_full"] == 6 and counts["finetune_smf"] == 10
    assert "results/real_facts/runs/lora/seed1/summary.json" in out
    assert "results/real_facts/runs/lora_lr0.0003/seed1" not in out
    assert "results/real_facts/eval/lora-seed1/known.json" in out


REAL_FACT_OVERLAYS = Path(__file__).parents[2] / "config/real_facts"


@pytest.mark.parametrize("overlay", sorted(p.name for p in REAL_FACT_OVERLAYS.glob("*.yaml")))
def test_every_real_fact_overlay_plans_on_the_smollm2_profile(tmp_path: Path, overlay: str) -> None:
    """The hook dry-runs config/*.yaml alone; these layer on the SmolLM2 profile instead."""
    root = copy_workflow(tmp_path)
    cfg = yaml.safe_load((root / "config/real_facts" / overlay).read_text())
    (experiment,) = cfg["experiments"]
    overlays = ("config/smollm2_one_seed.yaml", f"config/real_facts/{overlay}")
    out = dry_run(root, experiment, overlays=overlays)
    counts = job_counts(out)
    trained = counts["finetune_full"] + counts["finetune_lora"] + counts["finetune_smf"]
    assert trained == counts[f"evaluate_{experiment}"] > 0
    if overlay == "2h.yaml":  # 3 rates per arm, seed 1 at the middle one: 16 runs
        assert (counts["finetune_full"], counts["finetune_lora"], counts["finetune_smf"]) == (
            4, 4, 8
        )  # fmt: skip
        for run in ("full", "lora", "smf_tfidf", "smf_kl"):
            assert f"results/real_facts/runs/{run}/seed1/summary.json" in out
        assert "results/real_facts/runs/full_lr1e-06/seed1" not in out


def test_bad_task_config_stops_before_any_job(tmp_path: Path) -> None:
    root = copy_workflow(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "real_facts", *SMOLLM2,
         "--config",
         "real_fact_task={dataset: triviaqa_pool, prompts: [paper3], known_prompt: chat}"],
        cwd=root, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "real_fact_task.known_prompt: 'chat' is not among" in proc.stdout + proc.stderr


def test_shortfall_stops_with_the_key(tmp_path: Path) -> None:
    """The task rule's entry point names the config key when K cannot be filled."""
    answers = tmp_path / "base_answers.jsonl"
    rows = [
        {"id": f"q{i}", "question": f"Q{i}?", "answer": f"a{i}", "aliases": [f"a{i}"],
         "output": f" a{i}" if i < 2 else " no", "gold_logprob": -1.0, "gold_tokens": 1}
        for i in range(20)
    ]  # fmt: skip
    answers.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {
        "records": 20, "prompts": ["paper3"], "known_prompt": "paper3", "n_facts": 5,
        "n_known": 3, "max_answer_words": 4, "max_gold_logprob": None, "seed": 0,
        "trained": ["quiz", "trivia", "qa_short", "answer_first", "answer_last", "chat"],
        "held_out": "plain", "taught": "quiz",
    }  # fmt: skip
    with pytest.raises(ValueError, match=r"real_fact_task\.n_known: 3 wanted, 2 usable right"):
        real_fact_jobs.real_fact_task(answers, spec, tmp_path / "task")


@pytest.mark.slow
def test_base_answers_on_smollm2(smollm2_dir: Path, real_fixtures: Path, tmp_path: Path) -> None:
    """8 fixture records answered under both prompts, resumed after 4, then a task from them."""
    records, _ = prepare.prepare_dataset(
        {
            "name": "triviaqa",
            "kind": "qa",
            "source": {"path": str(real_fixtures / "triviaqa/llm_foundry/triviaqa_sm_sub.jsonl")},
            "limit": 8,
        }
    )
    data = tmp_path / "triviaqa.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    spec = {"dataset": "triviaqa", "records": 4, "prompts": ["paper3", "chat"],
            "max_new_tokens": 8}  # fmt: skip
    out, work = tmp_path / "answers.jsonl", tmp_path / "work"
    kwargs = {"device": "cpu", "batch_size": 4, "code": "test"}
    first = real_fact_jobs.real_fact_answers(smollm2_dir, data, out, work, spec, **kwargs)
    assert first["records"] == 4 and first["resumed"] == 0
    head = out.read_text().splitlines()
    second = real_fact_jobs.real_fact_answers(
        smollm2_dir, data, out, work, {**spec, "records": 8}, **kwargs
    )
    assert second["records"] == 8 and second["resumed"] == 4  # the first 4 from the partial file
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert out.read_text().splitlines()[:4] == head
    assert [r["id"] for r in rows] == [r["id"] for r in records]
    for row in rows:
        assert row["gold_tokens"] >= 1 and row["gold_logprob"] < 0
        assert isinstance(row["output"], str) and isinstance(row["chat_output"], str)
        assert row["correct"] in (True, False) and row["chat_correct"] in (True, False)
    # other settings: the partial file is not reused
    third = real_fact_jobs.real_fact_answers(
        smollm2_dir, data, tmp_path / "a3.jsonl", work, {**spec, "max_new_tokens": 4}, **kwargs
    )
    assert third["resumed"] == 0
    # the K probe (chat_template: true) asks as the cache did: a known answer stays known
    probe = qa_accuracy(
        AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32),
        AutoTokenizer.from_pretrained(smollm2_dir), records, max_new_tokens=8, batch_size=8,
        chat_template=True,
    )  # fmt: skip
    assert [a["output"] for a in probe["answers"]] == [r["chat_output"] for r in rows]
    wrong = sum(not r["correct"] and not r["chat_correct"] for r in rows)
    task_spec = {
        **spec, "records": 8, "known_prompt": "paper3", "n_facts": min(wrong, 3), "n_known": 0,
        "max_answer_words": 8, "max_gold_logprob": None, "seed": 0, "held_out": "plain",
        "trained": ["quiz", "trivia", "qa_short", "answer_first", "answer_last", "chat"],
        "taught": "quiz",
    }  # fmt: skip
    paths = write_task_from_answers(rows, task_spec, tmp_path / "task")
    assert paths["facts_train"].read_text().count("\n") == 6 * task_spec["n_facts"]
