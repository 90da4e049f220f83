"""examples/smf_trainer.py runs end to end on a tiny model (the real run uses SmolLM2)."""

import importlib.util

import pytest
import torch
from conftest import REPO, make_tiny_qwen2
from smf_models import small_config

from smf.method.retrofit import memories


def load_example():
    spec = importlib.util.spec_from_file_location("smf_example", REPO / "examples/smf_trainer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_runs_on_a_tiny_model(tokenizer, tmp_path, monkeypatch):
    example = load_example()
    trained = {}
    save = example.smf.save_pretrained

    def keep(model, directory):
        trained.update({i: m.values.detach().clone() for i, m in memories(model).items()})
        return save(model, directory)

    monkeypatch.setattr(example.smf, "save_pretrained", keep)
    text = example.run(lambda: make_tiny_qwen2(seed=1), tokenizer, tmp_path,
                       config=small_config(), steps=5, recovery_steps=2)  # fmt: skip
    assert isinstance(text, str)
    assert sorted(p.name for p in (tmp_path / "memory").iterdir()) == [
        "memory.json", "memory.safetensors"
    ]  # fmt: skip
    reloaded = example.smf.from_pretrained(make_tiny_qwen2(seed=1), tmp_path / "memory")
    for layer, m in memories(reloaded).items():
        assert torch.equal(m.values, trained[layer])


@pytest.mark.slow
def test_example_runs_on_smollm2(smollm2_gguf, tmp_path):
    import subprocess
    import sys

    cmd = [sys.executable, str(REPO / "examples/smf_trainer.py"), "--gguf", str(smollm2_gguf),
           "--out", str(tmp_path), "--steps", "3"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1].startswith("The capital of Zorbania is")
