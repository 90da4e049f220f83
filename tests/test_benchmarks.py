"""benchmarks/arms_step.py --smoke: every arm's timed step runs through the pipeline's loop
(the real numbers come from a GPU; here only that the code path works)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "arms_step.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("arms_step", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("arm", "precision"), [("full", "bf16"), ("lora", "bf16_autocast"), ("smf_paper3", "fp32")]
)
def test_smoke_step(bench, arm, precision):
    row = bench.run_one(arm, precision, smoke=True, steps=2, warmup=1, tokens=32)
    assert row["arm"] == arm and row["device"] == "cpu"
    assert math.isfinite(row["tokens_per_s"]) and row["tokens_per_s"] > 0
    assert row["tokens_per_step"] == 4 * 4 * 32
    assert row["trainable"] > 0


def test_grad_memory_smoke_combines_rows():
    """benchmarks/smf_grad_memory.py at tiny size: combining leaves one row per slot read."""
    path = SCRIPT.parent / "smf_grad_memory.py"
    spec = importlib.util.spec_from_file_location("smf_grad_memory", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    raw = module.run_one(module.SMOKE, 16, combine=False)
    combined = module.run_one(module.SMOKE, 16, combine=True)
    assert combined["unique_slots"] == raw["unique_slots"] == combined["grad_rows"]
    assert combined["grad_rows"] <= 256 < raw["grad_rows"]
