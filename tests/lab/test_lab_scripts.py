"""The lab scripts (lab/, not the product) still import and parse their arguments: a cheap
guard against the pipeline's library moving under them. What they measure is not tested."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO

LAB = REPO / "lab"


@pytest.mark.parametrize("script", ["lr_probe.py", "lab_memory_pretraining.py", "base_answers.py"])
def test_a_lab_script_runs_its_help(script):
    proc = subprocess.run(
        [sys.executable, str(LAB / script), "--help"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage:" in proc.stdout


def test_lab_says_it_is_not_the_product():
    assert "not the product" in (LAB / "README.md").read_text()
