"""Bad configs fail before any job starts, naming the key (snakemake dry runs, seconds)."""

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import copy_workflow

BAD = {
    "typo": ("arms:\n  smf_kl: {smf: {topt: 3}}\n", "topt"),
    "wrong_type": ("seeds: zero\n", "seeds"),
    "unknown_arm_kind": ("arms:\n  adapter: {kind: prefix, train: {lr: 1.0}}\n", "prefix"),
    "layer_outside_model": ("retrofit: {layers: [1, 9]}\n", "retrofit.layers: [9]"),
    "top_t_too_large": ("arms:\n  smf_kl: {smf: {top_t: 5000}}\n", "arms.smf_kl.smf.top_t"),
    "probe_without_dataset": ("probes:\n  medmcqa: {dataset: nope}\n", "probes.medmcqa.dataset"),
}


@pytest.fixture(scope="module")
def workflow(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("workflow"))


def snakemake(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


def dry_run(cwd: Path, overlay: str) -> subprocess.CompletedProcess:
    (cwd / "overlay.yaml").write_text(overlay)
    return snakemake(cwd, "--configfile", "config/demo.yaml", "overlay.yaml")


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_fails_before_any_job_naming_the_key(workflow, case):
    overlay, needle = BAD[case]
    proc = dry_run(workflow, overlay)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert needle in out, out[-2000:]
    assert "Building DAG of jobs" not in out


def test_demo_and_paper_profiles_build_their_dags(workflow):
    proc = dry_run(workflow, "{}\n")
    assert proc.returncode == 0, proc.stderr[-2000:]
    paper = snakemake(workflow, "--quiet", "rules")
    assert paper.returncode == 0, paper.stderr[-2000:]
    # 10 arms x 3 seeds: full, LoRA, our 2 SMF arms and paper 3's 6 (additive, replacement,
    # additive+S, each with TF-IDF and KL); a second retrofit (replacement) with its own
    # background; base + 2 retrofits + 30 model evaluations; 6 datasets
    for rule, n in [("finetune_smf", 24), ("finetune_lora", 3), ("finetune_full", 3),
                    ("retrofit", 2), ("background", 2), ("evaluate", 33),
                    ("prepare_data", 6)]:  # fmt: skip
        assert f"{rule} {n}" in " ".join(paper.stdout.split()), rule
