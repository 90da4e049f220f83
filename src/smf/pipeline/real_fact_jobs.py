"""Job entry points of issue 27's real-fact task (rules/real_fact_task.smk): the base model's
cached answers (`real_fact_answers`) and the task built from them (`real_fact_task`)."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from smf.data import sources
from smf.probes.base_answers import cache_base_answers
from smf.tasks.real_fact_task import write_task_from_answers
from smf.training import arms


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
