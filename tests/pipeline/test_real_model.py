"""A real pretrained model through the pipeline's stages, offline: SmolLM2-135M-Instruct.

The base stage converts the 4-bit GGUF (tools/fetch_smollm2.py) into results/models/base;
retrofit, background statistics, SMF and LoRA finetuning and evaluation then run on real
MedMCQA / WikiText / TriviaQA records (../shared/fixtures/real, cut as in real_records.py) at
a CI-small size. Checked: what must hold on any real model, not its scores.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import real_records
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from smf.data import sources
from smf.data.gguf import gguf_layer_count
from smf.method.retrofit import memories
from smf.pipeline import stages

pytestmark = pytest.mark.slow

LAYERS = [7, 15, 22]  # 30 layers: the paper's 1/4, 1/2, 3/4 depths (as config/smollm2.yaml)
MEMORY = {"n_keys": 32, "heads": 2, "topk": 8, "key_dim": 64, "swilu": True,
          "query_bias": True, "query_norm": False}  # fmt: skip
RETROFIT = {"layers": LAYERS, "mode": "additive", "alpha_init": 1.0, "zero_init_output": True,
            "seed": 0, "memory": MEMORY}  # fmt: skip
TRAIN = {"lr": 1e-3, "epochs": 1, "micro_batch_size": 4, "grad_accum": 1, "warmup_steps": 0,
         "max_length": 128, "checkpoint_every": 0}  # fmt: skip
N_TRAIN, N_EVAL, N_BACKGROUND = 8, 12, 8
HEADER = "Medical exam question:"
LLAMA_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PROMPT = "Question: What is the capital of France?\nAnswer:"


@pytest.fixture(scope="module")
def work(smollm2_dir: Path, real_fixtures: Path, tmp_path_factory) -> dict:
    """Real records written as the data stage writes them, and the retrofitted memory."""
    root = tmp_path_factory.mktemp("real_model")
    train, evaluation = real_records.medmcqa_split(real_fixtures)
    pages = real_records.wikitext2_pages_lm_eval(real_fixtures)
    paths = {
        "task": sources.write_jsonl(train[:N_TRAIN], root / "medmcqa_train.jsonl"),
        "medmcqa": sources.write_jsonl(evaluation[:N_EVAL], root / "medmcqa.jsonl"),
        "corpus": sources.write_jsonl(
            [{"id": str(i), "text": p} for i, p in enumerate(pages[:N_BACKGROUND])],
            root / "background.jsonl",
        ),
        "wikitext": sources.write_jsonl(
            [
                {"id": str(i), "text": t}
                for i, t in enumerate(real_records.wikitext103_rows(real_fixtures)[:60])
            ],
            root / "wikitext.jsonl",
        ),  # fmt: skip
        "triviaqa": sources.write_jsonl(
            real_records.triviaqa(real_fixtures), root / "triviaqa.jsonl"
        ),
    }
    memory = root / "retrofit" / "memory.safetensors"
    stages.retrofit_and_recover(
        smollm2_dir, paths["corpus"], RETROFIT, {**TRAIN, "max_steps": 1},
        memory, root / "retrofit" / "recovery_log.jsonl", device="cpu", work_dir=root / "ck_r",
    )  # fmt: skip
    stages.background_stats(
        smollm2_dir, memory, paths["corpus"], root / "bg.safetensors", root / "bg.json",
        max_length=256, batch_size=4, device="cpu", description="WikiText-2 test pages",
    )  # fmt: skip
    return {"root": root, "memory": memory, **paths}


def _logits(model, tokenizer, text: str = PROMPT) -> torch.Tensor:
    with torch.inference_mode():
        return model(**tokenizer(text, return_tensors="pt")).logits


def test_gguf_conversion_keeps_logits(smollm2_gguf: Path, smollm2) -> None:
    model, tokenizer = smollm2
    loaded = AutoModelForCausalLM.from_pretrained(
        smollm2_gguf.parent, gguf_file=smollm2_gguf.name, dtype=torch.float32
    ).eval()
    assert torch.equal(_logits(loaded, tokenizer), _logits(model, tokenizer))
    assert gguf_layer_count(smollm2_gguf) == model.config.num_hidden_layers == 30
    assert model.config.model_type == "llama" and model.config.vocab_size == 49152


def test_converted_base_saves_like_any_model(smollm2_dir: Path, smollm2, tmp_path) -> None:
    """Full finetuning reloads the base folder and saves it: no GGUF quantisation entry may
    survive the conversion (found by the first whole-profile run: the full arm failed)."""
    model, tokenizer = smollm2
    assert "quantization_config" not in json.loads((smollm2_dir / "config.json").read_text())
    reloaded = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()
    reloaded.save_pretrained(tmp_path / "saved")
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "saved", dtype=torch.float32).eval()
    assert torch.equal(_logits(again, tokenizer), _logits(model, tokenizer))


def test_retrofit_keeps_logits_bit_identical(smollm2_dir: Path, smollm2, work) -> None:
    from smf.method.retrofit import load_retrofitted, retrofit

    model, tokenizer = smollm2
    fresh = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()
    retrofit(fresh, stages.retrofit_config(smollm2_dir, RETROFIT), seed=0)
    assert sorted(memories(fresh)) == LAYERS
    assert torch.equal(_logits(fresh, tokenizer), _logits(model, tokenizer))
    recovered = load_retrofitted(smollm2_dir, work["memory"], dtype=torch.float32).eval()
    assert torch.isfinite(_logits(recovered, tokenizer)).all()


def _finetune(arm: str, arm_cfg: dict, smollm2_dir: Path, work: dict) -> dict:
    out = work["root"] / "runs" / arm
    return stages.finetune(
        arm, arm_cfg, TRAIN, seed=0, base_dir=smollm2_dir, task_path=work["task"],
        header=HEADER, out_dir=out, out_log=out / "train_log.jsonl",
        out_summary=out / "summary.json", work_dir=work["root"] / "ck" / arm, device="cpu",
        memory_path=work["memory"], background_path=work["root"] / "bg.safetensors",
    )  # fmt: skip


def test_smf_moves_only_value_rows(smollm2_dir: Path, work) -> None:
    arm = {"kind": "smf", "smf": {"method": "tfidf", "top_t": 16, "optimizer": "adam"}}
    summary = _finetune("smf_tfidf", arm, smollm2_dir, work)
    assert summary["steps"] == N_TRAIN // TRAIN["micro_batch_size"]
    assert math.isfinite(summary["final_loss"])
    before = load_file(work["memory"])
    after = load_file(work["root"] / "runs" / "smf_tfidf" / "memory.safetensors")
    assert before.keys() == after.keys()
    for name, tensor in before.items():
        if name.endswith("memory.values"):
            moved = (after[name] != tensor).any(dim=1)
            assert 0 < moved.sum() <= summary["steps"] * arm["smf"]["top_t"], name
        else:
            assert torch.equal(after[name], tensor), f"{name} moved; only value rows may"


def test_lora_targets_llama_projections(smollm2_dir: Path, work) -> None:
    import json

    arm = {"kind": "lora", "lora": {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0,
                                    "target_modules": LLAMA_PROJECTIONS}}  # fmt: skip
    summary = _finetune("lora", arm, smollm2_dir, work)
    adapter = work["root"] / "runs" / "lora"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert sorted(config["target_modules"]) == sorted(LLAMA_PROJECTIONS)
    tensors = load_file(adapter / "adapter_model.safetensors")
    for layer in (0, 29):
        for proj in LLAMA_PROJECTIONS:
            assert any(f"layers.{layer}." in k and f".{proj}.lora_A" in k for k in tensors), (
                f"no LoRA on layer {layer} {proj}"
            )
    assert math.isfinite(summary["final_loss"])


PROBES = {
    "medmcqa": {"dataset": "medmcqa", "kind": "multiple_choice", "protocol": "paper3"},
    "wikitext": {"dataset": "wikitext", "kind": "perplexity", "protocol": "paper3",
                 "limit": 30, "max_length": 256, "stride": 128},
    "triviaqa": {"dataset": "triviaqa", "kind": "qa", "protocol": "paper3",
                 "max_new_tokens": 16},
}  # fmt: skip


def _evaluate(model: str, kind: str, artifact, smollm2_dir: Path, work: dict, probes: dict):
    outs = {p: work["root"] / "eval" / model / f"{p}.json" for p in probes}
    return stages.evaluate(
        model, kind, probes, base_dir=smollm2_dir, artifact=artifact,
        data_paths={p: work[p] for p in probes}, outs=outs, device="cpu", dtype="float32",
        batch_size=16, header=HEADER,
    )  # fmt: skip


def test_base_probes_finite_and_knows_some_trivia(smollm2_dir: Path, work) -> None:
    results = {r["probe"]: r for r in _evaluate("base", "base", None, smollm2_dir, work, PROBES)}
    for probe, result in results.items():
        assert math.isfinite(result["value"]), probe
    # SmolLM2-135M knows little trivia, but some: the 32 questions hold at least one it gets
    assert results["triviaqa"]["correct"] > 0, results["triviaqa"]["answers"]
    decoding = results["triviaqa"]["decoding"]
    assert decoding["eos_token_id"] is not None and decoding["do_sample"] is False


def test_finetuned_probes_finite(smollm2_dir: Path, work) -> None:
    # generation was checked on the base model; here scoring only, and fewer WikiText rows
    few = {"medmcqa": PROBES["medmcqa"], "wikitext": {**PROBES["wikitext"], "limit": 10}}
    runs = work["root"] / "runs"
    if not (runs / "smf_tfidf" / "memory.safetensors").is_file():
        pytest.skip("needs the SMF and LoRA runs of the tests above")
    for model, kind, artifact in (
        ("smf_tfidf-seed0", "smf", runs / "smf_tfidf" / "memory.safetensors"),
        ("lora-seed0", "lora", runs / "lora"),
    ):
        for result in _evaluate(model, kind, artifact, smollm2_dir, work, few):
            assert math.isfinite(result["value"]), (model, result["probe"])
