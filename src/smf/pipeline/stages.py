"""The pipeline's stages as plain functions: what each Snakemake rule's script calls.

Every function takes paths and plain dicts (exactly what the rule passes through `params:`),
writes its outputs atomically at the end, and returns a small summary. Keeping them here
rather than in workflow/scripts/ makes them importable, testable and reusable outside
Snakemake.
"""

from __future__ import annotations

import json
import platform
import shutil
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from smf.data import gguf, prepare, prompts, sources
from smf.method import provenance
from smf.method.background import BackgroundStats, compute_background
from smf.method.memory import MemoryConfig
from smf.method.retrofit import (
    RetrofitConfig,
    load_retrofitted,
    memory_blocks,
    retrofit,
    save_memory,
)
from smf.method.selection import METHODS
from smf.pipeline import lock
from smf.pipeline.freshness import (
    fingerprint as fingerprint,  # keys checkpoints to one exact config
)
from smf.pipeline.joblog import log_to as log_to  # re-exported: every rule script uses it
from smf.probes import perplexity, qa, scoring
from smf.training import arms, precision
from smf.training.config import RowSelection, TrainConfig
from smf.training.loop import train


def write_json(obj: dict, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    tmp.replace(path)


def clear_checkpoint(work_dir: str | Path) -> None:
    """A finished run's checkpoint is dead weight once its outputs are written."""
    shutil.rmtree(Path(work_dir) / "checkpoint", ignore_errors=True)


def write_log(records: list[dict], path: str | Path) -> None:
    sources.write_jsonl(records, path)


def torch_dtype(name: str) -> torch.dtype:
    try:
        return getattr(torch, name)
    except AttributeError:
        raise ValueError(f"unknown dtype {name!r} (use float32, bfloat16 or float16)") from None


def environment() -> dict:
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


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


def texts_of(path: str | Path) -> list[str]:
    return [r["text"] for r in sources.read_jsonl(path)]


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

    from smf.demo import model as demo_model

    if pretrain_corpus is None:
        raise ValueError("base.model 'demo' needs the demo pretraining corpus")
    texts = texts_of(pretrain_corpus)
    d = base["demo"]
    tokenizer = demo_model.build_tokenizer(texts, vocab_size=d["vocab_size"])
    config = demo_model.tiny_qwen2_config_for(
        tokenizer,
        hidden_size=d["hidden_size"],
        num_layers=d["num_layers"],
        intermediate_size=d["intermediate_size"],
        num_heads=d["num_heads"],
        num_kv_heads=d["num_kv_heads"],
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config).to(arms.resolve_device(device))
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
) -> dict:
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = load_retrofitted(base_dir, memory_path, dtype=torch.float32)
    model.to(arms.resolve_device(device))
    docs = texts_of(corpus)
    stats = compute_background(
        model, tokenizer, docs, max_length=max_length, batch_size=batch_size,
        description=description,
    )  # fmt: skip
    settings = {"max_length": max_length, "batch_size": batch_size, "description": description}
    stats.provenance = provenance.background_provenance(base_dir, memory_path, settings)
    stats.save(out_stats)
    summary = {**stats.summary(), "provenance": stats.provenance}
    write_json(summary, out_summary)
    return summary


# --------------------------------------------------------------------------- finetune


# arms.<arm>.smf keys -> RowSelection fields (absent keys keep RowSelection's defaults)
SELECTION_KEYS = {
    "count_tokens": "count_tokens", "select_per": "per", "kl_eps": "kl_eps", "select_ties": "ties",
}  # fmt: skip


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
) -> dict:
    """Train one arm with one seed; writes its artifact, train_log.jsonl and summary.json."""
    kind = arm_cfg["kind"]
    dev = arms.resolve_device(device)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    tcfg = TrainConfig(seed=seed, **train_cfg)
    torch.manual_seed(seed)
    selection = None
    if kind == "smf":
        dtype = precision.load_dtype(tcfg.precision, False, dev)
        model = load_retrofitted(base_dir, memory_path, dtype=dtype).to(dev)
        smf_cfg = arm_cfg["smf"]
        if smf_cfg["method"] not in METHODS:
            raise ValueError(f"arms.{arm}.smf.method must be one of {METHODS}")
        background = BackgroundStats.load(background_path) if smf_cfg["method"] != "count" else None
        if background is not None:  # statistics of another memory would select wrong rows
            provenance.check_background(background, background_path, memory_path)
        model, opt = arms.setup_smf(
            model, tcfg, smf_cfg["optimizer"], train_alpha=smf_cfg.get("train_alpha", False)
        )
        selection = RowSelection(
            method=smf_cfg["method"],
            top_t=smf_cfg["top_t"],
            background=background,
            **{field: smf_cfg[key] for key, field in SELECTION_KEYS.items() if key in smf_cfg},
        )
    else:
        dtype = precision.load_dtype(tcfg.precision, kind == "full", dev)
        model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype).to(dev)
        if kind == "full":
            model, opt = arms.setup_full(model, tcfg, arm_cfg.get("gradient_checkpointing", False))
        elif kind == "lora":
            model, opt = arms.setup_lora(model, tcfg, arm_cfg["lora"])
        else:
            raise ValueError(f"arms.{arm}.kind must be one of {arms.KINDS}, got {kind!r}")
    texts = task_texts(task_path, header, task_kind)
    result = train(
        model, tokenizer, texts, tcfg, opt, work_dir=work_dir,
        fingerprint=fingerprint(arm_cfg, train_cfg, seed, len(texts)), selection=selection,
    )  # fmt: skip
    arms.save_arm(kind, model.cpu(), out_dir)
    write_log(result.log, out_log)
    summary = {
        "arm": arm,
        "kind": kind,
        "seed": seed,
        "steps": result.steps,
        "examples": len(texts),
        "effective_batch": tcfg.micro_batch_size * tcfg.grad_accum,
        "top_t": arm_cfg.get("smf", {}).get("top_t"),
        "method": arm_cfg.get("smf", {}).get("method"),
        "final_loss": result.log[-1]["loss"] if result.log else None,
        "rows_updated_total": sum(r["rows_updated"] for r in result.log),
        "diagnostics": result.extra.get("diagnostics"),  # SMF only: see smf.training.diagnostics
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "wall_seconds": result.wall_seconds,
        "resumed_from_step": result.resumed_from,
        "train": result.extra["config"],
        "environment": environment(),
        "provenance": {
            "fingerprint": fingerprint(arm_cfg, train_cfg, seed, len(texts)),
            "task": str(task_path),
            "memory_sha256": provenance.file_sha256(memory_path) if memory_path else None,
            "background": selection.background.provenance
            if selection and selection.background
            else None,
        },
    }
    write_json(summary, out_summary)
    clear_checkpoint(work_dir)
    return summary


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
) -> list[dict]:
    """Score one model on every probe (loaded once) and write one eval-result JSON per probe.

    Memories stay float32 (`memory_dtype: float32`, ours) or take the model's dtype
    (`model`: paper 3's code casts the whole model, memory included, for evaluation)."""
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


def run_probe(model, tokenizer, cfg: dict, records: list[dict], batch_size: int, header: str):
    protocol = cfg["protocol"]
    if cfg["kind"] == "multiple_choice":
        return scoring.multiple_choice_accuracy(
            model, tokenizer, records, protocol=protocol, batch_size=batch_size, header=header
        )
    if cfg["kind"] == "perplexity":
        return perplexity.perplexity(
            model, tokenizer, [r["text"] for r in records], protocol=protocol,
            limit=cfg.get("limit", 1000),
            max_length=cfg.get("max_length"),  # None: the protocol's default
            stride=cfg.get("stride", 512), batch_size=batch_size,
        )  # fmt: skip
    if cfg["kind"] == "qa":
        return qa.qa_accuracy(
            model, tokenizer, records, protocol=protocol,
            max_new_tokens=cfg.get("max_new_tokens"), batch_size=batch_size,
        )  # fmt: skip
    raise ValueError(f"probe kind {cfg['kind']!r} is unknown")
