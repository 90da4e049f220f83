"""The workflow on a real single-node Slurm (issue 10): a cancelled training job resumes.

.ci/slurm/start.sh starts munged, slurmctld and slurmd from scratch in a private folder;
the test runs a slice of the tiny finished run (one SMF training, its evaluation, the report)
through `--profile profiles/slurm`, `scancel`s the training job after its first checkpoint,
and checks that Snakemake resubmits it, that it resumes, and that every output equals the
same slice run locally. The daemons are stopped by PID at the end, also on failure.
Skips where Slurm cannot run: not root, binaries or the executor plugin missing.
Run it alone with `python -m pytest -m slurm`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

REPO = Path(__file__).resolve().parents[2]
START, STOP = REPO / ".ci/slurm/start.sh", REPO / ".ci/slurm/stop.sh"
# long enough to cancel between two checkpoints, short enough for CI (200 optimizer steps)
OVERLAY = "arms: {smf_tfidf: {train: {epochs: 100, checkpoint_every: 10}}}\n"
RUN = "results/medmcqa/runs/smf_tfidf/seed0"
TIMEOUT = 600  # seconds for the whole Slurm run; Snakemake ignores SIGTERM while it waits
# This cluster has no accounting database (sacct would fail and the run hang): poll squeue,
# and often, since every job here takes seconds.
CI_FLAGS = ["--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks",
            "2", "--seconds-between-status-checks", "2"]  # fmt: skip


@pytest.fixture(scope="module")
def slurm_env(tmp_path_factory):
    """Environment for clients of a freshly started private cluster."""
    if os.geteuid() != 0:
        pytest.skip("Slurm test needs root (slurmd runs the jobs)")
    missing = [b for b in ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel")
               if shutil.which(b) is None]  # fmt: skip
    if missing:
        pytest.skip(f"Slurm not installed (missing {missing}); .ci/run installs it with apt")
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="pip install '.[slurm]'")
    folder = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "SMF_SLURM_DIR": str(folder)}
    proc = subprocess.run(["bash", START], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"Slurm did not start:\n{proc.stderr[-3000:]}"
    env["SLURM_CONF"] = proc.stdout.strip().splitlines()[-1].split("=", 1)[1]
    try:
        yield env
    finally:
        subprocess.run(["bash", STOP], env=env, capture_output=True, timeout=120)


def slice_copy(finished: Path, dst: Path) -> Path:
    run = shutil.copytree(finished, dst, symlinks=True)
    (run / "overlay.yaml").write_text(OVERLAY)
    return run


def training_job(env: dict) -> str | None:
    """The Slurm id of the running finetune job (the plugin puts the rule in the comment)."""
    out = subprocess.run(["squeue", "-h", "-t", "R", "-o", "%i %k"], env=env,
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    ids = [line.split()[0] for line in out.splitlines() if "finetune_smf" in line]
    return ids[0] if ids else None


def test_a_cancelled_training_job_resumes_to_the_local_result(finished, slurm_env, tmp_path):
    local = slice_copy(finished, tmp_path / "local")
    cmd = [sys.executable, "-m", "snakemake", "all", "--configfile", "overlay.yaml"]
    proc = subprocess.run([*cmd, "--cores", "1"], cwd=local, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]

    cluster = slice_copy(finished, tmp_path / "cluster")
    log = (tmp_path / "slurm_snakemake.log").open("w")
    started = time.time()
    run = subprocess.Popen(
        ["timeout", "-k", "10", str(TIMEOUT), *cmd, "--profile", "profiles/slurm",
         *CI_FLAGS],
        cwd=cluster, env=slurm_env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        checkpoint = (
            cluster / "results/checkpoints/medmcqa/runs/smf_tfidf/seed0/checkpoint/meta.json"
        )
        while not (checkpoint.exists() and (job := training_job(slurm_env))):
            assert run.poll() is None, "Snakemake ended before the training checkpointed"
            assert time.time() - started < TIMEOUT, "no checkpoint appeared"
            time.sleep(0.2)
        subprocess.run(["scancel", job], env=slurm_env, check=True)
        assert run.wait(timeout=TIMEOUT) == 0, (tmp_path / "slurm_snakemake.log").read_text()
    finally:
        if run.poll() is None:
            run.kill()
    text = (tmp_path / "slurm_snakemake.log").read_text()
    assert "finetune_smf" in text and text.count("Trying to restart job") >= 1, text[-3000:]
    summary = json.loads((cluster / RUN / "summary.json").read_text())
    assert summary["resumed_from_step"] > 0, "the resubmitted job started over"
    ours, theirs = (
        load_file(cluster / RUN / "memory.safetensors"),
        load_file(local / RUN / "memory.safetensors"),
    )
    assert ours.keys() == theirs.keys()
    for name, tensor in theirs.items():
        assert tensor.equal(ours[name]), name
    assert (cluster / RUN / "train_log.jsonl").read_text() == (
        local / RUN / "train_log.jsonl"
    ).read_text()
    for rel in (
        "results/medmcqa/eval/smf_tfidf-seed0/medmcqa.json",
        "results/medmcqa/tables/main.csv",
    ):
        assert (cluster / rel).read_text() == (local / rel).read_text(), rel
    slurm_logs = sorted((cluster / "logs/slurm/rule_finetune_smf").rglob("*.log"))
    assert len(slurm_logs) == 2, slurm_logs  # the cancelled job and its resubmission
    print(f"slurm slice: {time.time() - started:.0f} s")
