"""Retrofit of a HF decoder: exactness of the additive start, replacement, save/load."""

import json

import pytest
import torch
from conftest import make_tiny_qwen2
from safetensors import safe_open

from smf.method.memory import MemoryConfig
from smf.method.retrofit import (
    RetrofitConfig,
    load_memory,
    load_retrofitted,
    memories,
    retrofit,
    save_memory,
)


def cfg(**kw) -> RetrofitConfig:
    mem = MemoryConfig(hidden_size=64, n_keys=8, heads=2, topk=4, key_dim=16)
    return RetrofitConfig(layers=[1, 3], memory=mem, **kw)


def test_additive_retrofit_is_bit_identical_to_base():
    model = make_tiny_qwen2()
    ids = torch.randint(0, 300, (2, 10))
    with torch.no_grad():
        before = model(ids).logits
        retrofit(model, cfg())
        after = model(ids).logits
    assert sorted(memories(model)) == [1, 3]
    assert torch.equal(before, after)


def test_paper3_alpha_start_is_close_but_not_identical():
    model = make_tiny_qwen2()
    ids = torch.randint(0, 300, (1, 8))
    with torch.no_grad():
        before = model(ids).logits
        retrofit(model, cfg(alpha_init=0.01, zero_init_output=False))
        after = model(ids).logits
    assert not torch.equal(before, after)
    assert (before - after).abs().max() < 1.0


def test_replacement_mode_replaces_the_mlp():
    model = make_tiny_qwen2()
    retrofit(model, cfg(mode="replacement"))
    block = model.model.layers[1].mlp
    assert block.mlp is None and block.alpha is None
    out = model(torch.randint(0, 300, (2, 6))).logits
    assert out.shape == (2, 6, 320)


def test_bad_layer_index_is_a_clear_error():
    model = make_tiny_qwen2()
    with pytest.raises(ValueError, match="outside the model's 4 layers"):
        retrofit(model, RetrofitConfig(layers=[7], memory=cfg().memory))


def test_save_then_load_gives_identical_logits(tmp_path):
    model = make_tiny_qwen2(seed=3)
    model.save_pretrained(tmp_path / "base")
    retrofit(model, cfg(zero_init_output=False), seed=5)
    save_memory(model, tmp_path / "mem" / "memory.safetensors")
    with safe_open(str(tmp_path / "mem" / "memory.safetensors"), "pt") as f:
        names = list(f.keys())
    assert "layers.1.memory.values" in names and all("mlp." not in n for n in names)
    assert json.loads((tmp_path / "mem" / "memory.json").read_text())["layers"] == [1, 3]
    ids = torch.randint(0, 300, (2, 9))
    loaded = load_retrofitted(tmp_path / "base", tmp_path / "mem" / "memory.safetensors")
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded(ids).logits)


def test_load_memory_rejects_mismatched_file(tmp_path):
    model = make_tiny_qwen2()
    retrofit(model, cfg())
    save_memory(model, tmp_path / "memory.safetensors")
    config = json.loads((tmp_path / "memory.json").read_text())
    config["layers"] = [1, 2]
    (tmp_path / "memory.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="does not match its config"):
        load_memory(make_tiny_qwen2(), tmp_path / "memory.safetensors")
