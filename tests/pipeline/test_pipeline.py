"""The demo DAG end to end, in a temporary copy of the workflow (a few minutes on 2 cores).

One demo run is shared by the tests below, which run in file order: the last one deletes the
trained models to show that tables rebuild from the cached evaluation files alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import copy_workflow
from safetensors import safe_open
from safetensors.torch import load_file

from smf.demo.words import CRAFTS

pytestmark = pytest.mark.slow

DEMO = ["--configfile", "config/demo.yaml"]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [*SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=1800
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def job_counts(output: str) -> dict[str, int]:
    """Parse Snakemake's 'Job stats' table from a dry run."""
    block = output.split("Job stats:")[1].split("\n\n")[0]
    rows = re.findall(r"^(\w+)\s+(\d+)$", block, flags=re.M)
    return {name: int(n) for name, n in rows if name != "total"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    root = copy_workflow(tmp_path_factory.mktemp("demo"))
    snakemake(root, "all", "--cores", "2", *DEMO)
    return root


def test_demo_fills_every_row_of_the_table(demo):
    table = pd.read_csv(demo / "results/medmcqa/tables/main.csv", index_col=0)
    assert list(table.index) == ["base", "retrofit", "full", "lora", "smf_tfidf", "smf_kl"]
    for probe in ("medmcqa", "wikitext", "triviaqa"):
        assert table[probe].notna().all(), probe
    assert (table.loc[["full", "lora", "smf_tfidf", "smf_kl"], "n_seeds"] == 1).all()
    matched = pd.read_csv(demo / "results/medmcqa/tables/matched_learning.csv")
    assert list(dict.fromkeys(matched["arm"])) == ["full", "lora", "smf_tfidf", "smf_kl"]
    # one rate per arm: no two runs bracket a level (only a level equal to a run's own gain
    # has a value), so the cells are "–" with their reason
    blank = matched["forgetting"].isna()
    assert blank.any() and matched.loc[blank, "reason"].notna().all()
    assert (demo / "results/medmcqa/tables/matched_differences.csv").exists()
    assert (demo / "results/medmcqa/tables/matched_gold.md").exists()  # matched on gold log-prob
    gains = pd.read_csv(demo / "results/medmcqa/tables/learning_gains.csv", index_col=0)
    assert (gains["learning_low"] <= gains["learning"]).all()
    assert (gains["learning"] <= gains["learning_high"]).all()
    for fig in ("learning_vs_forgetting", "loss_curves", "pareto_fronts"):
        for ext in ("png", "pdf"):
            assert (demo / f"results/medmcqa/figures/{fig}.{ext}").stat().st_size > 1000
    log = [
        json.loads(x) for x in (demo / "results/medmcqa/runs/smf_kl/seed0/train_log.jsonl").open()
    ]
    assert all(0 < r["rows_updated"] <= 2 * 1024 for r in log)  # top_t per memory layer, 2 layers
    assert "train" in (demo / "logs/medmcqa/finetune/smf_kl/seed0.log").read_text()  # tqdm progress


def test_demo_from_scratch_is_deterministic(demo, tmp_path):
    """A second run from scratch gives byte-identical files (CPU, same seeds).

    It rebuilds one chain per arm kind (data, demo model, retrofit, background, one full, LoRA
    and SMF training, their evaluations), not the whole table, to keep CI short.
    """
    again = copy_workflow(tmp_path)
    models = ["full-seed0", "lora-seed0", "smf_kl-seed0"]
    probes = ["medmcqa", "wikitext", "triviaqa"]
    targets = [f"results/medmcqa/eval/{m}/{p}.json" for m in models for p in probes]
    snakemake(again, *targets, "--cores", "2", *DEMO)
    compared = [
        *targets,
        "results/medmcqa/runs/smf_kl/seed0/memory.safetensors",
        "results/medmcqa/runs/smf_kl/seed0/train_log.jsonl",
        "results/medmcqa/runs/full/seed0/train_log.jsonl",
        "results/medmcqa/runs/lora/seed0/train_log.jsonl",
        "results/background/stats.safetensors",
    ]
    for rel in compared:
        if rel.endswith(".safetensors"):  # the header's metadata order varies: compare content
            assert safetensors_content(again / rel) == safetensors_content(demo / rel), rel
        else:
            assert (again / rel).read_bytes() == (demo / rel).read_bytes(), rel


def safetensors_content(path: Path) -> tuple[dict, dict]:
    with safe_open(path, "pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k).numpy().tobytes() for k in f.keys()}  # noqa: SIM118
    return metadata, tensors


def test_changing_one_arm_reruns_only_its_branch(demo):
    overlay = demo / "lora_lr.yaml"
    overlay.write_text("arms:\n  lora: {train: {lr: 0.005}}\n")
    out = snakemake(demo, "-n", "--quiet", "rules", "--cores", "1", *DEMO, str(overlay)).stdout
    assert job_counts(out) == {
        "finetune_lora": 1, "evaluate_medmcqa": 1, "tables": 1, "figures": 1, "tradeoff": 1,
        "all": 1,
    }  # fmt: skip


def test_the_fact_experiment_has_its_own_table(demo):
    """Paper 1's experiment: its arms scored on its own probe and the shared forgetting probes;
    the reference models' forgetting scores are the main experiment's, not recomputed."""
    facts = pd.read_csv(demo / "results/facts/tables/main.csv", index_col=0)
    main = pd.read_csv(demo / "results/medmcqa/tables/main.csv", index_col=0)
    assert list(facts.index) == ["base", "retrofit", "full", "lora", "smf_tfidf", "smf_kl"]
    for probe in ("facts", "facts_taught", "wikitext", "triviaqa"):
        assert facts[probe].notna().all(), probe
    assert facts.loc["base", "wikitext"] == main.loc["base", "wikitext"]
    assert not (demo / "results/facts/eval/base/wikitext.json").exists()
    # nobody can know invented people: the base model's only right answers are guessed trades
    # (one of 8 common words); a home or a pet is an invented name
    for probe in ("facts", "facts_taught"):
        base = json.loads((demo / f"results/facts/eval/base/{probe}.json").read_text())
        right = [a["output"].strip() for a in base["answers"] if a["correct"]]
        assert set(right) <= set(CRAFTS) and len(right) < base["n"] / 8, probe
    log = [json.loads(x) for x in (demo / "results/facts/runs/smf_kl/seed0/train_log.jsonl").open()]
    assert all(0 < r["rows_updated"] <= 2 * 1024 for r in log)
    for name in ("pareto_fronts", "pareto_fronts_facts_taught"):
        assert (demo / f"results/facts/figures/{name}.png").stat().st_size > 1000, name
    # the recall table's learning is the taught-form gain, in points; the main one's the held-out
    for probe, name in (
        ("facts", "learning_gains"),
        ("facts_taught", "learning_gains_facts_taught"),
    ):
        gains = pd.read_csv(demo / f"results/facts/tables/{name}.csv", index_col="run")
        expected = 100 * facts.loc[gains.index, f"{probe}_delta"]
        assert gains["learning"].to_numpy() == pytest.approx(expected.to_numpy(), abs=1e-3), probe
        # each run's rate is the fact experiment's, not the main one's of the same arm name
        assert gains.loc["full", "lr"] == pytest.approx(5e-4), probe
        assert gains.loc["lora", "lr"] == pytest.approx(1e-3), probe


def test_each_experiment_reruns_alone(demo):
    """A change to the fact experiment's arm reruns its branch and report only."""
    overlay = demo / "facts_lr.yaml"
    overlay.write_text("experiments:\n  facts:\n    arms:\n      lora: {train: {lr: 0.005}}\n")
    out = snakemake(demo, "-n", "--quiet", "rules", "--cores", "1", *DEMO, str(overlay)).stdout
    assert job_counts(out) == {
        "finetune_lora": 1, "evaluate_facts": 1, "tables": 1, "figures": 1, "tradeoff": 1,
        "tradeoff_extra": 1, "all": 1,
    }  # fmt: skip


def test_the_second_seed_overlay_adds_only_seed_1_runs(demo):
    """config/demo_seeds.yaml: seed 1's runs and evaluations in both experiments and their
    reports; seed 0's runs, the base model, retrofit and background stay cached."""
    overlay = "config/demo_seeds.yaml"
    out = snakemake(demo, "-n", "--quiet", "rules", "--cores", "1", *DEMO, overlay).stdout
    assert job_counts(out) == {  # each experiment's (one rule set for both)
        "finetune_full": 2, "finetune_lora": 2, "finetune_smf": 4, "evaluate_medmcqa": 4,
        "evaluate_facts": 4, "tables": 2, "figures": 2, "tradeoff": 2, "tradeoff_extra": 1,
        "all": 1,
    }  # fmt: skip


def test_adding_a_learning_rate_trains_only_the_new_branch(demo):
    """A sweep point is a new arm: its runs and evaluations, and the trade-off report; the
    main table and figures (each arm's own rate) and every cached run stay as they are."""
    overlay = demo / "lora_sweep.yaml"
    overlay.write_text("arms:\n  lora: {lr_sweep: [0.005]}\n")
    out = snakemake(demo, "-n", "--quiet", "rules", "--cores", "1", *DEMO, str(overlay)).stdout
    assert job_counts(out) == {
        "finetune_lora": 1, "evaluate_medmcqa": 1, "tradeoff": 1, "all": 1,
    }  # fmt: skip


def test_a_retrofit_variant_is_its_own_cached_branch(demo):
    """A `retrofit_variants` entry gets its own retrofit and background statistics; an SMF arm
    naming it trains from them; the main retrofit's cached files are not touched."""
    overlay = demo / "variant.yaml"
    overlay.write_text(
        "retrofit_variants: {replacement: {mode: replacement}}\n"
        "arms:\n  smf_rep: {kind: smf, train: {lr: 2.0e-2},"
        " smf: {method: kl, top_t: 64, retrofit: replacement}}\n"
        "run_arms: [smf_rep]\nseeds: [0]\n"
    )
    cached = ["results/models/retrofit/memory.safetensors", "results/background/stats.safetensors"]
    stamps = [(demo / f).stat().st_mtime_ns for f in cached]
    targets = ["results/medmcqa/eval/smf_rep-seed0/medmcqa.json",
               "results/medmcqa/eval/retrofit_replacement/medmcqa.json"]  # fmt: skip
    snakemake(demo, *targets, "--cores", "2", *DEMO, str(overlay))
    assert [(demo / f).stat().st_mtime_ns for f in cached] == stamps
    variant = demo / "results/models/retrofit_replacement"
    assert json.loads((variant / "memory.json").read_text())["mode"] == "replacement"
    summary = json.loads((demo / "results/medmcqa/runs/smf_rep/seed0/summary.json").read_text())
    digest = hashlib.sha256((variant / "memory.safetensors").read_bytes()).hexdigest()
    assert summary["provenance"]["memory_sha256"] == digest
    stats = summary["provenance"]["background"]
    assert stats["memory_sha256"] == digest, stats
    for model in ("smf_rep-seed0", "retrofit_replacement"):
        result = json.loads((demo / f"results/medmcqa/eval/{model}/medmcqa.json").read_text())
        assert 0 <= result["value"] <= 1


def test_killed_finetune_resumes_to_the_uninterrupted_result(demo):
    """SIGKILL a finetune after its first checkpoint; the rerun resumes and matches exactly."""
    run = demo / "results/medmcqa/runs/smf_kl/seed0"
    reference = load_file(run / "memory.safetensors")
    ref_log = (run / "train_log.jsonl").read_text()
    ref_eval = (demo / "results/medmcqa/eval/smf_kl-seed0/medmcqa.json").read_text()
    target = [
        "results/medmcqa/runs/smf_kl/seed0/summary.json",
        "results/medmcqa/eval/smf_kl-seed0/medmcqa.json",
        "--cores", "1", *DEMO,
    ]  # fmt: skip
    ckpt = demo / "results/checkpoints/medmcqa/runs/smf_kl/seed0/checkpoint/meta.json"
    proc = subprocess.Popen(
        [*SNAKEMAKE, *target, "--forcerun", "finetune_smf", "--allowed-rules", "finetune_smf",
         "evaluate_medmcqa"],
        cwd=demo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.time() + 600
    while not ckpt.exists():
        assert proc.poll() is None, "finetune ended before its first checkpoint"
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "summary.json").exists()  # nothing left looking finished
    snakemake(demo, "--unlock", *DEMO)  # a killed Snakemake leaves its lock, as for users
    snakemake(demo, *target)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["resumed_from_step"] > 0
    resumed = load_file(run / "memory.safetensors")
    assert resumed.keys() == reference.keys()
    for name, tensor in reference.items():
        assert tensor.equal(resumed[name]), name
    assert (run / "train_log.jsonl").read_text() == ref_log
    assert (demo / "results/medmcqa/eval/smf_kl-seed0/medmcqa.json").read_text() == ref_eval


def test_tables_rebuild_from_cached_evaluations_only(demo):
    before = (demo / "results/medmcqa/tables/main.csv").read_text()
    shutil.rmtree(demo / "results/models")
    shutil.rmtree(demo / "results/medmcqa/runs")
    shutil.rmtree(demo / "results/medmcqa/tables")
    table = "results/medmcqa/tables/main.csv"
    snakemake(demo, table, "--cores", "1", *DEMO, "--allowed-rules", "tables")
    assert (demo / "results/medmcqa/tables/main.csv").read_text() == before
    assert not (demo / "results/models").exists()
