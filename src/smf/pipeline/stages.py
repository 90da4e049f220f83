"""The pipeline's stages as plain functions: what each Snakemake rule's script calls.

Every function takes paths and plain dicts (exactly what the rule passes through `params:`),
writes its outputs atomically at the end, and returns a small summary. Keeping them here
rather than in workflow/scripts/ makes them importable, testable and reusable outside
Snakemake. What they share is in smf.pipeline.stage_io; an arm's training is its kind's
(smf.training.arms), a probe's scoring its kind's (smf.probes.dispatch).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from smf.data import gguf, prepare, prompts, sources
from smf.method import provenance
from smf.method.background import compute_background
from smf.method.memory import MemoryConfig
from smf.method.retrofit import (
    RetrofitConfig,
    load_retrofitted,
    memory_blocks,
    retrofit,
    save_memory,
    to_paper3_bf16,
)
from smf.pipeline import lock
from smf.pipeline.freshness import (
    fingerprint as fingerprint,  # keys checkpoints to one exact config
)
from smf.pipeline.joblog import log_to as log_to  # re-exported: every rule script uses it
from smf.pipeline.stage_io import environment, torch_dtype, write_log
from smf.pipeline.stage_io import texts_of as texts_of  # re-exported (tools)
from smf.pipeline.stage_io import write_json as write_json  # re-exported (rule scripts)
from smf.probes.dispatch import run_probe
from smf.training import arms, precision
from smf.training.arms.smf import SELECTION_KEYS as SELECTION_KEYS  # re-exported (tests)
from smf.training.checkpoint import clear_checkpoint
from smf.training.config import TrainConfig
from smf.training.loop import TrainResult, train

# --------------------------------------------------------------------------- data


def prepare_data(name: str, spec: dict, out: str | Path) -> dict:
    """Load one configured dataset, normalise it to its schema, write JSONL; returns stats."""
    records, stats = prepare.prepare_dataset({"name": name, **spec})
    sources.write_jsonl(records, out)
    return stats


def make_demo_world(out_dir: str | Path, seed: int) -> dict:
    from smf.demo import datasets as demo

    paths = demo.write_demo_world(out_dir, seed=seed)
    return {k: str(v) for k, v in paths.items()}


# --------------------------------------------------------------------------- base model


@lock.holds_work_dir
def build_base(
    base: dict,
    out_dir: str | Path,
    *,
    device: str,
    work_dir: str | Path,
    pretrain_corpus: str | Path | None = None,
    seed: int = 0,
) -> dict:
    """Paper: copy the hub model + tokenizer locally (a .gguf file is de-quantised once, see
    smf.data.gguf). Demo: build and pretrain a tiny Qwen2."""
    out_dir = Path(out_dir)
    if gguf.is_gguf(base["model"]):
        model, tokenizer = gguf.load_gguf(base["model"], dtype=torch_dtype(base["dtype"]))
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
        return {"model": base["model"], "format": "gguf", "parameters": model.num_parameters()}
    if base["model"] != "demo":
        try:
            tokenizer = AutoTokenizer.from_pretrained(base["model"])
            model = AutoModelForCausalLM.from_pretrained(
                base["model"], dtype=torch_dtype(base["dtype"])
            )
        except OSError as err:
            raise RuntimeError(
                f"could not load base model {base['model']!r}: {err}\n"
                "Point `base.model` at a local folder holding the weights and tokenizer, or "
                "pre-fill the Hugging Face cache (HF_HOME) and set HF_HUB_OFFLINE=1."
            ) from err
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
        return {"model": base["model"], "parameters": model.num_parameters()}

    if pretrain_corpus is None:
        raise ValueError("base.model 'demo' needs the demo pretraining corpus")
    return pretrain_demo(
        base, out_dir, pretrain_corpus, device=device, work_dir=work_dir, seed=seed
    )


def pretrain_demo(
    base: dict, out_dir: Path, corpus: str | Path, *, device: str, work_dir: str | Path, seed: int
) -> dict:
    """The demo's base: a tiny Qwen2 and its tokenizer (smf.demo.model) pretrained on `corpus`."""
    from smf.demo import model as demo_model

    texts = texts_of(corpus)
    d = base["demo"]
    model, tokenizer = demo_model.build_untrained(texts, d, seed)
    model = model.to(arms.resolve_device(device))
    cfg = TrainConfig(seed=seed, **d["pretrain"])
    model, opt = arms.setup_full(model, cfg)
    result = train(
        model, tokenizer, texts, cfg, opt,
        work_dir=work_dir, fingerprint=fingerprint(base, seed, len(texts)),
    )  # fmt: skip
    model.cpu().save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    write_log(result.log, out_dir / "pretrain_log.jsonl")
    clear_checkpoint(work_dir)
    return {"model": "demo", "parameters": model.num_parameters(), "steps": result.steps}


# --------------------------------------------------------------------------- retrofit


def retrofit_config(base_dir: str | Path, cfg: dict) -> RetrofitConfig:
    hidden = AutoConfig.from_pretrained(base_dir).hidden_size
    return RetrofitConfig(
        layers=list(cfg["layers"]),
        memory=MemoryConfig(hidden_size=hidden, **cfg["memory"]),
        mode=cfg["mode"],
        alpha_init=cfg["alpha_init"],
        zero_init_output=cfg["zero_init_output"],
        extra={"base": str(base_dir)},
    )


@lock.holds_work_dir
def retrofit_and_recover(
    base_dir: str | Path,
    recovery_corpus: str | Path,
    cfg: dict,
    train_cfg: dict,
    out_memory: str | Path,
    out_log: str | Path,
    *,
    device: str,
    work_dir: str | Path,
) -> dict:
    """Attach memories to the frozen base and warm them up densely on the recovery corpus."""
    dev = arms.resolve_device(device)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    tcfg = TrainConfig(seed=cfg["seed"], **train_cfg)
    dtype = precision.load_dtype(tcfg.precision, False, dev)  # the base stays frozen
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype)
    rcfg = retrofit_config(base_dir, cfg)
    rcfg.extra.update(provenance.base_identity(base_dir))  # memory.json records its base
    retrofit(model, rcfg, seed=cfg["seed"])
    model.to(dev)
    model, opt = arms.setup_recovery(model, tcfg)
    texts = texts_of(recovery_corpus)
    result = train(
        model, tokenizer, texts, tcfg, opt,
        work_dir=work_dir, fingerprint=fingerprint(cfg, train_cfg, len(texts)),
    )  # fmt: skip
    write_log(result.log, out_log)
    save_memory(model.cpu(), out_memory)
    clear_checkpoint(work_dir)
    return {"steps": result.steps, "wall_seconds": result.wall_seconds}


def background_stats(
    base_dir: str | Path,
    memory_path: str | Path,
    corpus: str | Path,
    out_stats: str | Path,
    out_summary: str | Path,
    *,
    max_length: int,
    batch_size: int,
    device: str,
    description: str,
    precision: str = "fp32",
) -> dict:
    """Count the retrofit model's slot reads over the corpus. `precision` fp32: model and memory
    in float32; paper3_bf16: paper 3's sparse stage counts its background with the model cast
    to bf16 as a whole (value tables back to float32) and no autocast."""
    if precision not in ("fp32", "paper3_bf16"):
        raise ValueError(f"background precision must be fp32 or paper3_bf16, got {precision!r}")
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    bf16 = precision == "paper3_bf16"
    model = load_retrofitted(base_dir, memory_path, dtype=torch.bfloat16 if bf16 else torch.float32)
    if bf16:
        to_paper3_bf16(model)
    model.to(arms.resolve_device(device))
    docs = texts_of(corpus)
    stats = compute_background(
        model, tokenizer, docs, max_length=max_length, batch_size=batch_size,
        description=description,
    )  # fmt: skip
    settings = {"max_length": max_length, "batch_size": batch_size, "description": description}
    if bf16:  # fp32 counts keep the provenance they always had
        settings["precision"] = precision
    stats.provenance = provenance.background_provenance(base_dir, memory_path, settings)
    stats.save(out_stats)
    summary = {**stats.summary(), "provenance": stats.provenance}
    write_json(summary, out_summary)
    return summary


# --------------------------------------------------------------------------- finetune


def task_texts(task_path: str | Path, header: str, kind: str = "multiple_choice") -> list[str]:
    """Training texts: multiple-choice records in paper 3's format, or text records as they are."""
    records = sources.read_jsonl(task_path)
    if kind == "text":
        return [r["text"] for r in records]
    if kind != "multiple_choice":
        raise ValueError(f"{task_path}: a task dataset is multiple_choice or text, not {kind!r}")
    return [prompts.mcq_training_text(r, header=header) for r in records]


@lock.holds_work_dir
def finetune(
    arm: str,
    arm_cfg: dict,
    train_cfg: dict,
    *,
    seed: int,
    base_dir: str | Path,
    task_path: str | Path,
    header: str,
    out_dir: str | Path,
    out_log: str | Path,
    out_summary: str | Path,
    work_dir: str | Path,
    device: str,
    memory_path: str | Path | None = None,
    background_path: str | Path | None = None,
    task_kind: str = "multiple_choice",
    kind_modules: Sequence[str] = (),
) -> dict:
    """Train one arm with one seed; writes its artifact (in `out_dir`, or `out_dir` itself for
    a kind whose artifact is a folder), train_log.jsonl and summary.json. The arm's kind comes
    from the registry (smf.training.arms), after importing `kind_modules` (arm_kind_modules)."""
    arms.import_kinds(kind_modules)
    kind = arms.kind_of(arm_cfg["kind"], key=f"arms.{arm}.kind")
    dev = arms.resolve_device(device)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    tcfg = TrainConfig(seed=seed, **train_cfg)
    run = arms.ArmRun(
        arm=arm, config=arm_cfg, train=tcfg, base_dir=base_dir, device=dev,
        memory_path=memory_path, background_path=background_path,
    )  # fmt: skip
    torch.manual_seed(seed)
    trainable = kind.setup(run)
    texts = task_texts(task_path, header, task_kind)
    key = fingerprint(arm_cfg, train_cfg, seed, len(texts))
    result = train(
        trainable.model, tokenizer, texts, tcfg, trainable.optimizer, work_dir=work_dir,
        fingerprint=key, selection=trainable.selection,
    )  # fmt: skip
    arms.save_arm(kind.name, trainable.model.cpu(), out_dir)
    write_log(result.log, out_log)
    summary = run_summary(run, seed, len(texts), trainable, result, key, task_path)
    write_json(summary, out_summary)
    clear_checkpoint(work_dir)
    return summary


def run_summary(
    run: arms.ArmRun,
    seed: int,
    examples: int,
    trainable: arms.Trainable,
    result: TrainResult,
    key: str,
    task_path: str | Path,
) -> dict:
    """A finished run's summary.json (`key`: the fingerprint its checkpoints were keyed by)."""
    tcfg, arm_cfg, selection = run.train, run.config, trainable.selection
    return {
        "arm": run.arm,
        "kind": arm_cfg["kind"],
        "seed": seed,
        "steps": result.steps,
        "examples": examples,
        "effective_batch": tcfg.micro_batch_size * tcfg.grad_accum,
        "top_t": arm_cfg.get("smf", {}).get("top_t"),
        "method": arm_cfg.get("smf", {}).get("method"),
        "final_loss": result.log[-1]["loss"] if result.log else None,
        "rows_updated_total": sum(r["rows_updated"] for r in result.log),
        "diagnostics": result.extra.get("diagnostics"),  # SMF only: see smf.training.diagnostics
        "trainable_parameters": sum(
            p.numel() for p in trainable.model.parameters() if p.requires_grad
        ),
        "wall_seconds": result.wall_seconds,
        "resumed_from_step": result.resumed_from,
        "train": result.extra["config"],
        "environment": environment(),
        "provenance": {
            "fingerprint": key,
            "task": str(task_path),
            "memory_sha256": provenance.file_sha256(run.memory_path) if run.memory_path else None,
            "background": selection.background.provenance
            if selection and selection.background
            else None,
        },
    }


# --------------------------------------------------------------------------- evaluate


def evaluate(
    model_name: str,
    kind: str,
    probe_cfgs: dict[str, dict],
    *,
    base_dir: str | Path,
    artifact: str | Path | None,
    data_paths: dict[str, str | Path],
    outs: dict[str, str | Path],
    device: str,
    dtype: str,
    batch_size: int,
    header: str,
    memory_dtype: str = "float32",
    kind_modules: Sequence[str] = (),
) -> list[dict]:
    """Score one model on every probe (loaded once) and write one eval-result JSON per probe.

    Memories stay float32 (`memory_dtype: float32`, ours) or take the model's dtype
    (`model`: paper 3's code casts the whole model, memory included, for evaluation).
    `kind_modules` (arm_kind_modules) register the kinds of their own that arms may use."""
    arms.import_kinds(kind_modules)
    dev = arms.resolve_device(device)
    tdtype = torch_dtype(dtype) if dev.type == "cuda" else torch.float32
    model = arms.load_for_eval(kind, base_dir, artifact, dtype=tdtype, device=dev)
    if memory_dtype == "model":
        for block in memory_blocks(model).values():
            block.to(tdtype)
    elif memory_dtype != "float32":
        raise ValueError(f"eval.memory_dtype must be float32 or model, got {memory_dtype!r}")
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    arm, _, seed = model_name.partition("-seed")
    results = []
    for probe, cfg in probe_cfgs.items():
        result = run_probe(
            model, tokenizer, cfg, sources.read_jsonl(data_paths[probe]), batch_size, header
        )
        result.update(
            model=model_name,
            arm=arm,
            seed=int(seed) if seed else None,
            probe=probe,
            kind=cfg["kind"],
            protocol=cfg["protocol"],
        )  # no timings here: evaluation files are bit-identical across reruns
        results.append(result)
    for result in results:  # write only when every probe succeeded
        write_json(result, outs[result["probe"]])
    return results
