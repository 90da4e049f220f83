"""SMF diagnostics: the train log's per-layer selection fields, the run's vacuous flag, the
memory/MLP output ratio, and that figures still read the richer log."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import make_tiny_qwen2
from torch import nn

from smf.method.background import compute_background, read_slots, recording
from smf.method.memory import MemoryConfig
from smf.method.retrofit import RetrofitConfig, memories, memory_blocks, retrofit
from smf.report import figures
from smf.training.arms import setup_smf
from smf.training.batching import BatchPlan, collate, tokenize
from smf.training.config import RowSelection, TrainConfig
from smf.training.diagnostics import (
    LOG_FIELDS,
    SelectionTrace,
    memory_output_ratio,
    memory_output_rms,
    selection_summary,
)
from smf.training.loop import train

TEXTS = [f"Question: what is item {i}?\nAnswer: item {i} is number {i * 7 % 13}" for i in range(12)]
LAYERS = [1, 3]


def retrofitted(**mem_kw) -> nn.Module:
    mem = MemoryConfig(hidden_size=64, n_keys=16, heads=2, topk=4, key_dim=16, **mem_kw)
    cfg = RetrofitConfig(layers=LAYERS, memory=mem, zero_init_output=False)
    return retrofit(make_tiny_qwen2(seed=0), cfg, seed=0)


def config(**kw) -> TrainConfig:
    base = dict(lr=0.05, micro_batch_size=3, grad_accum=2, warmup_steps=0, schedule="constant",
                checkpoint_every=0, seed=1)  # fmt: skip
    return TrainConfig(**{**base, **kw})


def run_smf(tokenizer, tmp_path, model, top_t, cfg, per="step", on_step=None):
    model, opt = setup_smf(model, cfg, "adam")
    sel = RowSelection(method="count", top_t=top_t, background=None, per=per)
    return train(model, tokenizer, TEXTS, cfg, opt, work_dir=tmp_path, fingerprint="d",
                 selection=sel, progress=False, on_step=on_step)  # fmt: skip


def step_reads(tokenizer, model, cfg, step=0) -> list[dict[int, set[int]]]:
    """Slots each micro-batch of `step` reads on real tokens, recomputed independently."""
    seqs = tokenize(tokenizer, TEXTS, cfg.max_length)
    plan = BatchPlan([len(s) for s in seqs], cfg)
    out = []
    with torch.no_grad(), recording(model):
        for micro in plan.micro_batches(step):
            batch = collate([seqs[i] for i in micro], tokenizer.pad_token_id)
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            out.append(
                {k: set(v.tolist()) for k, v in read_slots(model, batch["attention_mask"]).items()}
            )
    return out


# --------------------------------------------------------------------------- selection fields


def constant_query(model: nn.Module) -> dict[int, set[int]]:
    """Every token's query becomes the same vector, so each layer reads one known slot set."""
    known = {}
    with torch.no_grad():
        for layer, m in memories(model).items():
            m.query.weight.zero_()
            m.query.bias.copy_(torch.linspace(-1, 1, m.query.bias.numel()))
            idx, _ = m.lookup(torch.zeros(1, m.config.hidden_size))
            known[layer] = set(idx.flatten().tolist())
    return known


@pytest.mark.parametrize("per", ["step", "micro_batch"])
def test_a_batch_reading_known_slots_logs_them(tokenizer, tmp_path, per):
    model = retrofitted()
    known = constant_query(model)
    assert all(1 < len(s) <= 8 for s in known.values())  # 2 heads x top 4
    top_t = 2
    result = run_smf(tokenizer, tmp_path, model, top_t, config(max_steps=2), per=per)
    for rec in result.log:
        for layer, slots in known.items():
            key = str(layer)
            assert rec["slots_read"][key] == len(slots)
            assert rec["rows_selected"][key] == top_t
            assert rec["fraction_selected"][key] == pytest.approx(top_t / len(slots), abs=1e-6)
            assert rec["selection_vacuous"][key] is False
        assert rec["rows_updated"] == sum(rec["rows_selected"].values())
    # top_t at least the slots read: selection keeps everything, every step is vacuous
    model = retrofitted()
    constant_query(model)
    again = run_smf(tokenizer, tmp_path / "b", model, 8, config(max_steps=2), per=per)
    for rec in again.log:
        assert rec["rows_selected"] == rec["slots_read"] == {str(k): len(known[k]) for k in known}
        assert all(rec["selection_vacuous"].values())


def test_slots_read_match_an_independent_count(tokenizer, tmp_path):
    cfg = config(max_steps=1)
    expect = step_reads(tokenizer, retrofitted(), cfg)
    result = run_smf(tokenizer, tmp_path, retrofitted(), 5, cfg)
    (rec,) = result.log
    for layer in LAYERS:
        union = set().union(*(m[layer] for m in expect))
        assert rec["slots_read"][str(layer)] == len(union) > 5
        assert rec["rows_selected"][str(layer)] == 5
    assert set(rec) >= set(LOG_FIELDS)


def test_per_micro_batch_counts_unions_and_each_micro_batch(tokenizer, tmp_path):
    cfg = config(max_steps=1)
    micro = step_reads(tokenizer, retrofitted(), cfg)
    largest = {layer: max(len(m[layer]) for m in micro) for layer in LAYERS}
    smallest = {layer: min(len(m[layer]) for m in micro) for layer in LAYERS}
    top_t = max(largest.values())  # at least every micro-batch's reads: vacuous everywhere
    (rec,) = run_smf(tokenizer, tmp_path, retrofitted(), top_t, cfg, per="micro_batch").log
    for layer in LAYERS:
        union = set().union(*(m[layer] for m in micro))
        assert rec["slots_read"][str(layer)] == rec["rows_selected"][str(layer)] == len(union)
        assert rec["selection_vacuous"][str(layer)] is True
    top_t = min(smallest.values()) - 1  # below every micro-batch's reads: never vacuous
    (rec,) = run_smf(tokenizer, tmp_path / "b", retrofitted(), top_t, cfg, per="micro_batch").log
    assert not any(rec["selection_vacuous"].values())
    assert all(top_t <= rec["rows_selected"][str(k)] <= 2 * top_t for k in LAYERS)


def test_trace_of_one_step_and_its_reset():
    trace = SelectionTrace(top_t=2)
    counts = {4: (torch.tensor([1, 5, 9]), torch.tensor([3, 1, 1]))}
    trace.add(counts, {4: torch.tensor([1, 5])})
    assert trace.record() == {
        "slots_read": {"4": 3},
        "rows_selected": {"4": 2},
        "fraction_selected": {"4": pytest.approx(2 / 3, abs=1e-6)},
        "selection_vacuous": {"4": False},
    }
    assert trace.record() == {name: {} for name in LOG_FIELDS}  # reset


# --------------------------------------------------------------------------- vacuous flag


def fake_log(vacuous: list[bool]) -> list[dict]:
    return [
        {"step": i + 1, "slots_read": {"2": 10}, "rows_selected": {"2": 10 if v else 4},
         "fraction_selected": {"2": 1.0 if v else 0.4}, "selection_vacuous": {"2": v}}
        for i, v in enumerate(vacuous)
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("steps", "flag"),
    [([True, True, False], True), ([True, False, True, False], False), ([False] * 3, False)],
    ids=["2of3", "half-is-not-most", "none"],
)
def test_vacuous_means_a_strict_majority_of_steps(steps, flag):
    summary = selection_summary(fake_log(steps), top_t=10)
    assert summary["selection_vacuous"] is flag
    assert summary["layers"]["2"]["vacuous_steps"] == sum(steps)
    assert summary["vacuous_layers"] == ([2] if flag else [])


def test_summary_skips_records_written_before_the_fields():
    log = [{"step": 1, "loss": 1.0}] + fake_log([True])
    summary = selection_summary(log, top_t=10)
    assert summary["steps_untraced"] == 1 and summary["steps_traced"] == 1
    assert summary["selection_vacuous"] is True


def test_run_summary_flags_vacuous_top_t_and_not_a_small_one(tokenizer, tmp_path):
    cfg = config(max_steps=2)
    big = run_smf(tokenizer, tmp_path / "big", retrofitted(), 10_000, cfg)
    small = run_smf(tokenizer, tmp_path / "small", retrofitted(), 2, cfg)
    assert big.extra["diagnostics"]["selection_vacuous"] is True
    assert small.extra["diagnostics"]["selection_vacuous"] is False
    layers = big.extra["diagnostics"]["selection"]["layers"]
    assert set(layers) == {"1", "3"} and layers["1"]["fraction_selected_mean"] == 1.0


# --------------------------------------------------------------------------- output ratio


class PositionMLP(nn.Module):
    """Outputs t + 1 at position t, on every hidden unit."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(1, x.shape[-2] + 1, dtype=x.dtype, device=x.device)
        return pos[:, None].expand_as(x)


def test_ratio_on_a_hand_computed_case():
    model = retrofitted(paper3_biases=True)
    with torch.no_grad():
        for block in memory_blocks(model).values():
            block.mlp = PositionMLP()
            block.memory.out.weight.zero_()
            block.memory.out.bias.fill_(3.0)  # memory(x) = 3 everywhere
            block.alpha.fill_(0.5)  # branch = 1.5
    ids = torch.randint(2, 300, (2, 5))
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    got = memory_output_rms(model, [{"input_ids": ids, "attention_mask": mask}])
    mlp_rms = math.sqrt((1 + 4 + 9 + 1 + 4 + 9 + 16 + 25) / 8)  # padding left out
    for layer in ("1", "3"):
        assert got[layer]["memory_rms"] == pytest.approx(1.5)
        assert got[layer]["mlp_rms"] == pytest.approx(mlp_rms)
        assert got[layer]["ratio"] == pytest.approx(1.5 / mlp_rms)


def test_zero_initialised_memory_is_inert_and_replacement_has_no_ratio(tokenizer):
    model = make_tiny_qwen2(seed=0)
    mem = MemoryConfig(hidden_size=64, n_keys=16, heads=2, topk=4, key_dim=16)
    retrofit(model, RetrofitConfig(layers=[2], memory=mem))  # zero-initialised output
    got = memory_output_ratio(model, tokenizer, TEXTS[:3])["2"]
    assert got["ratio"] == 0.0 and got["mlp_rms"] > 0
    model = retrofit(make_tiny_qwen2(seed=0), RetrofitConfig(layers=[2], memory=mem,
                                                             mode="replacement"))  # fmt: skip
    got = memory_output_ratio(model, tokenizer, TEXTS[:3])["2"]
    assert got["memory_rms"] > 0 and got["mlp_rms"] is None and got["ratio"] is None


def test_run_records_the_ratio_at_start_and_end(tokenizer, tmp_path):
    result = run_smf(tokenizer, tmp_path, retrofitted(), 4, config(max_steps=3, lr=0.5))
    ratio = result.extra["diagnostics"]["memory_output_ratio"]
    assert ratio["texts"] == 6  # the effective batch of step 1 (fewer than RATIO_TEXTS)
    start, end = ratio["start"], ratio["end"]
    assert set(start) == set(end) == {"1", "3"}
    for layer in ("1", "3"):
        assert start[layer]["ratio"] > 0
        assert end[layer]["memory_rms"] != start[layer]["memory_rms"]  # its values moved
    # nothing before layer 1's MLP depends on a memory value: its output did not change
    assert end["1"]["mlp_rms"] == start["1"]["mlp_rms"]


# --------------------------------------------------------------------------- resume, figures


class Killed(Exception):
    pass


def test_resumed_smf_run_logs_the_same_diagnostics(tokenizer, tmp_path):
    cfg = config(max_steps=4, checkpoint_every=2)
    ref = run_smf(tokenizer, tmp_path / "ref", retrofitted(), 5, cfg)

    def kill(step):
        if step == 3:
            raise Killed

    with pytest.raises(Killed):
        run_smf(tokenizer, tmp_path / "cut", retrofitted(), 5, cfg, on_step=kill)
    resumed = run_smf(tokenizer, tmp_path / "cut", retrofitted(), 5, cfg)
    assert resumed.resumed_from == 2
    assert resumed.log == ref.log
    assert resumed.extra["diagnostics"] == ref.extra["diagnostics"]


def test_figures_read_a_log_with_the_new_fields(tokenizer, tmp_path):
    result = run_smf(tokenizer, tmp_path, retrofitted(), 5, config(max_steps=2))
    path = tmp_path / "smf" / "seed0" / "train_log.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in result.log))
    frame = figures.load_train_logs({"smf": [path]})
    assert list(frame["step"]) == [1, 2]
    assert list(frame["rows_updated"]) == [r["rows_updated"] for r in result.log]


def test_tfidf_run_logs_its_selection(tokenizer, tmp_path):
    """With a background (moved once to the model's device) the fields are the same."""
    model = retrofitted()
    bg = compute_background(model, tokenizer, TEXTS[6:], batch_size=3, progress=False)
    sel = RowSelection(method="tfidf", top_t=3, background=bg)
    cfg = config(max_steps=1)
    model, opt = setup_smf(model, cfg, "sgd")
    result = train(model, tokenizer, TEXTS, cfg, opt, work_dir=tmp_path, fingerprint="bg",
                   selection=sel, progress=False)  # fmt: skip
    assert result.log[0]["rows_selected"] == {"1": 3, "3": 3}
    assert result.extra["diagnostics"]["selection"]["top_t"] == 3


def test_finetune_stage_writes_the_diagnostics(tokenizer, tmp_path):
    """The pipeline's finetune stage: new fields in train_log.jsonl and summary.json."""
    from smf.method.retrofit import save_memory
    from smf.pipeline import stages

    base = tmp_path / "base"
    make_tiny_qwen2(seed=0).save_pretrained(base)
    tokenizer.save_pretrained(base)
    save_memory(retrofitted(), tmp_path / "retrofit" / "memory.safetensors")
    task = tmp_path / "task.jsonl"
    task.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    arm = {"kind": "smf", "smf": {"method": "count", "top_t": 10_000, "optimizer": "sgd"}}
    train_cfg = dict(lr=0.05, max_steps=2, micro_batch_size=3, grad_accum=2, warmup_steps=0,
                     checkpoint_every=0)  # fmt: skip
    out = tmp_path / "runs" / "smf" / "seed0"
    summary = stages.finetune(
        "smf", arm, train_cfg, seed=0, base_dir=base, task_path=task, header="", out_dir=out,
        out_log=out / "train_log.jsonl", out_summary=out / "summary.json",
        work_dir=tmp_path / "ck", device="cpu",
        memory_path=tmp_path / "retrofit" / "memory.safetensors", task_kind="text",
    )  # fmt: skip
    written = json.loads((out / "summary.json").read_text())
    assert written["diagnostics"] == json.loads(json.dumps(summary["diagnostics"]))
    assert written["diagnostics"]["selection_vacuous"] is True  # top_t above any step's reads
    assert set(written["diagnostics"]["memory_output_ratio"]["start"]) == {"1", "3"}
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 2 and all(set(r) >= set(LOG_FIELDS) for r in log)
