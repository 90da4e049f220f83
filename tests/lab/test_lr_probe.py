"""lab/lr_probe.py on the finished tiny run: it trains in a temporary folder and reports
held-out task loss per rate, leaving the run's results untouched."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO

PROBE = REPO / "lab" / "lr_probe.py"


def run_probe(root: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(PROBE), "--root", str(root), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def rows(stdout: str) -> dict[float, list[float]]:
    lines = stdout.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("lr\t"))) + 1
    return {float(r.split("\t")[0]): [float(v) for v in r.split("\t")[1:]] for r in lines[start:]}


def test_rates_are_trained_and_scored_without_touching_the_run(finished):
    before = sorted(p for p in (finished / "results").rglob("*") if p.is_file())
    proc = run_probe(finished, "--arm", "smf_tfidf", "--lr", "0", "1.0", "--steps", "2",
                     "--eval-examples", "4")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = rows(proc.stdout)
    assert set(table) == {0.0, 1.0}
    steps, _, change, _, _ = table[0.0]
    assert steps == 2 and change == 0.0  # lr 0: the held-out loss is the retrofit model's
    assert table[1.0][2] != 0.0  # a real rate moves it
    assert sorted(p for p in (finished / "results").rglob("*") if p.is_file()) == before


def test_a_missing_artifact_or_arm_is_named(finished, tmp_path):
    proc = run_probe(finished, "--arm", "nope", "--lr", "1e-3")
    assert proc.returncode != 0 and "--arm nope" in proc.stderr
    (tmp_path / "config").symlink_to(finished / "config")
    proc = run_probe(tmp_path, "--arm", "smf_tfidf", "--lr", "1e-3")
    assert proc.returncode != 0 and "results/models/base: missing (rule base_model)" in proc.stderr
