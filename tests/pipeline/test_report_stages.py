"""The report jobs start fast: they import neither torch nor transformers."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO

SCRIPTS = [f"workflow/scripts/{name}.py" for name in ("tables", "figures", "tradeoff")]
HEAVY = ("torch", "transformers", "peft", "datasets")


@pytest.mark.parametrize("script", SCRIPTS)
def test_report_scripts_import_no_torch(script):
    # run the script's imports (everything before the job body) in a fresh interpreter
    source = (REPO / script).read_text()
    imports = "\n".join(
        line for line in source.splitlines() if line.startswith(("from ", "import "))
    )
    check = (
        f"{imports}\nimport sys\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
