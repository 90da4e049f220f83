"""train.precision: which weights are bf16, and that autocast really runs (on the CPU here)."""

from __future__ import annotations

import pytest
import torch
from conftest import make_tiny_qwen2

from smf.method.memory import MemoryConfig
from smf.method.retrofit import RetrofitConfig, memories, retrofit
from smf.training import precision
from smf.training.arms import setup_full, setup_smf
from smf.training.config import RowSelection, TrainConfig
from smf.training.loop import train

TEXTS = [f"Question: what is item {i}?\nAnswer: number {i * 7 % 13}" for i in range(8)]
CPU, GPU = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize(
    ("mode", "trains_base", "device", "dtype"),
    [
        ("fp32", True, GPU, torch.float32),
        ("fp32", False, GPU, torch.float32),
        ("bf16_autocast", True, GPU, torch.float32),  # master weights stay fp32
        ("bf16_autocast", False, GPU, torch.bfloat16),  # frozen weights in bf16 on a GPU
        ("bf16_autocast", False, CPU, torch.float32),  # ... but not on a CPU
        ("bf16", True, GPU, torch.bfloat16),  # paper 3's full finetuning
        ("bf16", True, CPU, torch.bfloat16),  # asked for, so also on a CPU
        ("bf16", False, CPU, torch.float32),
    ],
)
def test_load_dtype(mode, trains_base, device, dtype):
    assert precision.load_dtype(mode, trains_base, device) == dtype


def test_unknown_precision_is_an_error():
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(lr=1.0, precision="fp16")


def run_full(tokenizer, tmp_path, mode: str, dtype: torch.dtype):
    model = make_tiny_qwen2(seed=0).to(dtype)
    cfg = TrainConfig(
        lr=1e-3, max_steps=2, micro_batch_size=2, grad_accum=2, warmup_steps=0,
        checkpoint_every=0, precision=mode,
    )  # fmt: skip
    model, opt = setup_full(model, cfg)
    result = train(model, tokenizer, TEXTS, cfg, opt, work_dir=tmp_path / mode, fingerprint=mode,
                   progress=False)  # fmt: skip
    return model, [r["loss"] for r in result.log]


def test_autocast_runs_and_master_weights_stay_fp32(tokenizer, tmp_path):
    fp32, ref = run_full(tokenizer, tmp_path, "fp32", torch.float32)
    amp, losses = run_full(tokenizer, tmp_path, "bf16_autocast", torch.float32)
    assert all(p.dtype == torch.float32 for p in amp.parameters())
    assert losses != ref  # bf16 matmuls give other numbers ...
    assert losses == pytest.approx(ref, rel=0.05)  # ... close to fp32's
    pure, bf16_losses = run_full(tokenizer, tmp_path, "bf16", torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in pure.parameters())
    assert bf16_losses == pytest.approx(ref, rel=0.05)


def test_smf_under_autocast_keeps_fp32_memory_and_moves_only_values(tokenizer, tmp_path):
    mem = MemoryConfig(hidden_size=64, n_keys=16, heads=2, topk=4, key_dim=16)
    model = retrofit(
        make_tiny_qwen2(seed=0).to(torch.bfloat16),
        RetrofitConfig(layers=[1, 3], memory=mem, zero_init_output=False),
    )
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = TrainConfig(
        lr=0.05, max_steps=2, micro_batch_size=2, grad_accum=2, warmup_steps=0,
        checkpoint_every=0, precision="bf16_autocast",
    )  # fmt: skip
    model, opt = setup_smf(model, cfg, "adam")
    train(
        model, tokenizer, TEXTS, cfg, opt, work_dir=tmp_path, fingerprint="x", progress=False,
        selection=RowSelection(method="count", top_t=5, background=None),
    )  # fmt: skip
    assert all(m.values.dtype == torch.float32 for m in memories(model).values())
    assert model.model.embed_tokens.weight.dtype == torch.bfloat16
    moved = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert moved == {f"model.layers.{i}.mlp.memory.values" for i in (1, 3)}


def test_memory_cast_with_the_model_still_runs(tokenizer):
    """eval.memory_dtype: model (paper 3's evaluation casts the whole model, memory included)."""
    from smf.method.retrofit import memory_blocks
    from smf.training.batching import collate, tokenize

    mem = MemoryConfig(hidden_size=64, n_keys=16, heads=2, topk=4, key_dim=16)
    model = retrofit(make_tiny_qwen2(seed=0), RetrofitConfig(layers=[1, 3], memory=mem))
    batch = collate(tokenize(tokenizer, TEXTS[:2], 64), tokenizer.pad_token_id)
    with torch.no_grad():
        ref = model(**batch).logits
        model.to(torch.bfloat16)
        for block in memory_blocks(model).values():
            block.to(torch.bfloat16)
        assert all(m.values.dtype == torch.bfloat16 for m in memories(model).values())
        logits = model(**batch).logits.float()
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(logits, ref, rtol=0.1, atol=0.1)
