"""`python -m build --wheel` makes a wheel whose core dependencies leave the pipeline out."""

import shutil
import subprocess
import sys
import zipfile

import pytest
from conftest import REPO

PIPELINE_ONLY = {"snakemake", "pandas", "matplotlib", "tabulate", "jsonschema", "datasets",
                 "peft", "lm-eval", "lm_eval"}  # fmt: skip


def requirement_name(line: str) -> str:
    spec = line.split(":", 1)[1].split(";")[0].strip()
    for stop in "<>=!~[ (":
        spec = spec.split(stop)[0]
    return spec.lower()


@pytest.mark.slow
def test_wheel_lists_the_pipeline_only_under_an_extra(tmp_path):
    pytest.importorskip("build", reason="needs `pip install build` (in the dev extra)")
    src = tmp_path / "src"  # a copy: building leaves build/ and *.egg-info behind
    shutil.copytree(REPO / "src", src, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tmp_path / name)
    # --no-isolation: offline, with the setuptools already installed
    cmd = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", "dist"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("smf-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        lines = zf.read(meta).decode().splitlines()
    assert "smf/api/__init__.py" in names and "smf/training/hf_trainer.py" in names
    requires = [line for line in lines if line.startswith("Requires-Dist:")]
    core = {requirement_name(line) for line in requires if "extra ==" not in line}
    assert {"torch", "transformers", "accelerate", "safetensors"} <= core
    assert not core & PIPELINE_ONLY, core & PIPELINE_ONLY
    snakemake = [line for line in requires if requirement_name(line) == "snakemake"]
    assert snakemake and all('extra == "pipeline"' in line for line in snakemake), snakemake
    assert "Provides-Extra: pipeline" in lines
