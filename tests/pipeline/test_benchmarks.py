"""benchmarks/arms_step.py --smoke: every arm's timed step runs through the pipeline's loop
(the real numbers come from a GPU; here only that the code path works)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "arms_step.py"


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


@pytest.fixture(scope="module")
def eval_speed():
    path = SCRIPT.parent / "eval_speed.py"
    spec = importlib.util.spec_from_file_location("eval_speed", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_eval_speed_skips_cleanly_without_the_model(eval_speed, tmp_path, capsys):
    """Without the GGUF (or lm_eval, or the fixtures) the benchmark says why and exits 0."""
    code = eval_speed.main(["--gguf", str(tmp_path / "none.gguf"), "--fixtures", str(tmp_path)])
    assert code == 0
    assert "skipped" in capsys.readouterr().out


def test_eval_speed_interleaves_sides_and_reports_the_largest_ratio(eval_speed):
    """Sides alternate which goes first between repeats; the table's ratio is of medians."""
    calls = []

    def side(name):
        return lambda: calls.append(name) or name

    runs = {"a": {"lm_eval": side("a/lm"), "project": side("a/ours")},
            "b": {"lm_eval": side("b/lm"), "project": side("b/ours")}}  # fmt: skip
    timings = eval_speed.interleaved(runs, repeats=2, device=eval_speed.torch.device("cpu"))
    assert calls == ["a/lm", "a/ours", "b/lm", "b/ours", "a/ours", "a/lm", "b/ours", "b/lm"]
    assert len(timings["a"]["project"]["seconds"]) == 2
    assert timings["b"]["lm_eval"]["result"] == "b/lm"
    timings["a"]["lm_eval"]["median"], timings["a"]["project"]["median"] = 2.0, 1.0
    timings["b"]["lm_eval"]["median"], timings["b"]["project"]["median"] = 1.0, 1.5
    text, worst = eval_speed.table(timings, {"a": "1 record", "b": "2 records"})
    assert worst == 1.5
    assert "| a | 1 record | 2.0 | 1.0 | 0.50x |" in text
