"""Job entry points of issue 27's real-fact task (rules/real_fact_task.smk): the base model's
cached answers (`real_fact_answers`), the task built from them (`real_fact_task`), and the
retrofit model's answer-position slot overlap of each fact's taught and held-out wordings
(`slot_overlap`)."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from smf.data import sources
from smf.data.prompts import PAPER3
from smf.pipeline.stage_io import write_json
from smf.probes.base_answers import cache_base_answers
from smf.probes.qa import adds_special_tokens, probe_prompts
from smf.tasks.real_fact_task import write_task_from_answers
from smf.training import arms
from smf.training.slot_overlap import answer_slot_overlap


def real_fact_answers(
    base_dir: str | Path,
    data_path: str | Path,
    out: str | Path,
    work_dir: str | Path,
    spec: dict,
    device: str,
    batch_size: int,
    code: str,
) -> dict:
    """The base model's answers on the dataset's first `records` records (fp32), resumable
    from `work_dir` while the settings and library version stay the same."""
    records = sources.read_jsonl(data_path)
    n = spec["records"]
    if len(records) < n:
        raise ValueError(
            f"real_fact_task.records: {n} wanted, dataset {spec['dataset']!r} has {len(records)} "
            f"({data_path}); raise its data limit or lower real_fact_task.records"
        )
    t0 = time.time()
    dev = arms.resolve_device(device)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).to(dev)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    counts = cache_base_answers(
        model,
        tokenizer,
        records[:n],
        out,
        Path(work_dir) / "partial.jsonl",
        # not `records`: a resumed job with more records reuses the rows it has
        meta={
            "dataset": spec["dataset"],
            "prompts": list(spec["prompts"]),
            "max_new_tokens": spec["max_new_tokens"],
            "code": code,
            "base": str(base_dir),
        },
        prompts=spec["prompts"],
        max_new_tokens=spec["max_new_tokens"],
        batch_size=batch_size,
    )
    return {**counts, "seconds": round(time.time() - t0, 1)}


def real_fact_task(answers_path: str | Path, spec: dict, out_dir: str | Path) -> dict:
    """F, K and their wordings from the cached answers (see smf.tasks.real_fact_task)."""
    paths = write_task_from_answers(sources.read_jsonl(answers_path), spec, out_dir)
    return {name: str(path) for name, path in paths.items()}


def _records_by_id(path: str | Path) -> dict[str, dict]:
    """A probe file's records by fact id (`question_id` of the task's TriviaQA records, `id`
    of prepared ones), in file order; a missing or repeated id is an error naming the file."""
    found: dict[str, dict] = {}
    for line, rec in enumerate(sources.read_jsonl(path), start=1):
        fact = rec.get("question_id", rec.get("id"))
        if fact is None:
            raise ValueError(f"{path}:{line}: no question_id (nor id) to pair the fact by")
        if str(fact) in found:
            raise ValueError(f"{path}:{line}: fact id {fact!r} appears twice")
        found[str(fact)] = rec
    return found


def paired_prompts(
    taught_path: str | Path, held_out_path: str | Path, facts: int, protocol: str = PAPER3
) -> tuple[list[str], list[tuple[str, str]]]:
    """The first `facts` fact ids of the taught file (file order) and, for each, the QA probe's
    prompts (taught wording, held-out wording). Both files must hold the same facts: an id
    missing from one is an error naming that file."""
    taught, held_out = _records_by_id(taught_path), _records_by_id(held_out_path)
    for ids, other, path in ((taught, held_out, held_out_path), (held_out, taught, taught_path)):
        missing = [fact for fact in ids if fact not in other]
        if missing:
            raise ValueError(
                f"{path}: no record for fact id {missing[0]!r} ({len(missing)} ids of the "
                f"other probe file missing); the taught and held-out files must hold the same facts"
            )
    ids = list(taught)[:facts]
    first = probe_prompts([taught[fact] for fact in ids], protocol)
    second = probe_prompts([held_out[fact] for fact in ids], protocol)
    return ids, list(zip(first, second, strict=True))


def slot_overlap(
    base_dir: str | Path,
    memory_path: str | Path,
    taught_path: str | Path,
    held_out_path: str | Path,
    out: str | Path,
    *,
    facts: int,
    device: str,
    batch_size: int,
    code: str,
    model_name: str = "retrofit",
    protocol: str = PAPER3,
) -> dict:
    """Per memory layer, the Jaccard overlap of the slots read at the answer position of each
    fact's taught and held-out prompts (exactly the QA probe's, `protocol`) against mismatched
    pairs (smf.training.slot_overlap), for the first `facts` facts (all, if fewer), on the
    retrofit model (fp32). Writes `out` and returns it without the per-pair values."""
    if facts < 2:
        raise ValueError(f"real_fact_task.overlap_facts: {facts}; mismatched pairs need 2 facts")
    ids, pairs = paired_prompts(taught_path, held_out_path, facts, protocol)
    dev = arms.resolve_device(device)
    model = arms.load_for_eval("retrofit", base_dir, memory_path, dtype=torch.float32, device=dev)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    special = adds_special_tokens(protocol)
    layers = answer_slot_overlap(
        model, tokenizer, pairs, batch_size=batch_size, add_special_tokens=special
    )
    result = {
        "model": model_name,
        "memory": str(memory_path),
        "base": str(base_dir),
        "facts": len(ids),
        "facts_requested": facts,
        "taught": str(taught_path),
        "held_out": str(held_out_path),
        "protocol": protocol,
        "add_special_tokens": special,
        "dtype": "float32",
        "code": code,
        "layers": {str(layer): _with_ratio(summary) for layer, summary in layers.items()},
        "fact_ids": ids,
    }  # no timings: the file is bit-identical across reruns (the benchmark has them)
    write_json(result, out)
    brief = {k: v for k, v in result.items() if k != "fact_ids"}
    brief["layers"] = {
        layer: {k: v for k, v in summary.items() if k != "matched_per_pair"}
        for layer, summary in result["layers"].items()
    }
    return brief


def _with_ratio(summary: dict) -> dict:
    """A layer's summary with matched / random (None when random is 0 or undefined)."""
    brief = {k: v for k, v in summary.items() if k != "matched_per_pair"}
    brief["ratio"] = summary["matched"] / summary["random"] if summary["random"] else None
    return {**brief, "matched_per_pair": summary["matched_per_pair"]}
