"""What a base model already knows: its cached answers on QA records (issue 27's F and K).

For each record: the greedy answer under each prompt (`paper3`, the QA probe's
`Question: {q}\\nAnswer:`; `chat`, the model's own chat template around the bare question),
whether it is right by the QA probe's match (paper 3's substring match) and with an alias as
whole words, and the gold answer's teacher-forced log-probability after the paper-3 prompt
(summed, token count, mean per token). `smf.tasks.real_facts.select_facts` draws F and K from
these rows, so the model runs once and the task is rebuilt from the cache.

Rows are written in chunks and appended to a partial file, so a killed job resumes after its
last finished chunk (`cache_base_answers`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from smf.data.prompts import qa_correct_paper3, qa_prompt
from smf.probes.qa import chat_prompt, generate_answers
from smf.probes.scoring import continuation_logprobs
from smf.tasks.real_fact_task import OUTPUT_FIELD
from smf.tasks.real_facts import whole_word_correct

PROMPTS = tuple(OUTPUT_FIELD)


def check_prompts(prompts: Sequence[str]) -> None:
    unknown = [p for p in prompts if p not in PROMPTS]
    if unknown or not prompts:
        raise ValueError(f"prompts must be a non-empty subset of {PROMPTS}, got {list(prompts)}")


@torch.no_grad()
def answer_rows(
    model: torch.nn.Module,
    tokenizer,
    records: Sequence[Mapping],
    prompts: Sequence[str] = ("paper3",),
    max_new_tokens: int = 16,
    batch_size: int = 16,
) -> list[dict]:
    """One cached-answer row per record (see the module docstring)."""
    check_prompts(prompts)
    plain = [qa_prompt(r["question"]) for r in records]
    gold = continuation_logprobs(
        model,
        tokenizer,
        [(p, " " + r["answer"]) for p, r in zip(plain, records, strict=True)],
        batch_size=batch_size,
    )
    rows = [
        {
            "id": str(r["id"]),
            "question": r["question"],
            "answer": r["answer"],
            "aliases": list(r["aliases"]),
            "gold_logprob": lp,
            "gold_tokens": n,
            "gold_mean_logprob": lp / n,
        }
        for r, (lp, n) in zip(records, gold, strict=True)
    ]
    for prompt in prompts:
        chat = prompt == "chat"
        texts = [chat_prompt(tokenizer, r["question"]) for r in records] if chat else plain
        outputs = generate_answers(
            model,
            tokenizer,
            texts,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            add_special_tokens=not chat,  # the chat template writes its own special tokens
        )
        prefix = "" if prompt == "paper3" else f"{prompt}_"
        for row, out in zip(rows, outputs, strict=True):
            row[OUTPUT_FIELD[prompt]] = out
            row[f"{prefix}correct"] = qa_correct_paper3(out, row["aliases"])
            row[f"{prefix}whole_word"] = whole_word_correct(out, row["aliases"])
    return rows


def _done_rows(partial: Path, meta: dict) -> list[dict]:
    """Rows of an earlier, interrupted job with the same settings (a torn last line dropped);
    a partial file written with other settings is discarded."""
    meta_path = partial.with_suffix(".meta.json")
    if not partial.exists() or not meta_path.exists():
        return []
    if json.loads(meta_path.read_text()) != meta:
        partial.unlink()
        return []
    rows = []
    for line in partial.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    partial.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def cache_base_answers(
    model: torch.nn.Module,
    tokenizer,
    records: Sequence[Mapping],
    out: str | Path,
    partial: str | Path,
    meta: dict,
    prompts: Sequence[str] = ("paper3",),
    max_new_tokens: int = 16,
    batch_size: int = 16,
    chunk_size: int = 64,
) -> dict:
    """Answer every record, `chunk_size` at a time, appending rows to `partial` (outside the
    job's outputs, with `meta` beside it: the settings a resumed job must share), then write
    them in record order to `out`. Returns counts of right answers per prompt."""
    partial, out = Path(partial), Path(out)
    partial.parent.mkdir(parents=True, exist_ok=True)
    questions = {str(r["id"]): r["question"] for r in records}
    # a row is reused only for the same question under the same id (the dataset may change)
    done = {
        r["id"]: r
        for r in _done_rows(partial, meta)
        if questions.get(r["id"], r["question"]) == r["question"]
    }
    partial.with_suffix(".meta.json").write_text(json.dumps(meta))
    todo = [r for r in records if str(r["id"]) not in done]
    chunks = [todo[i : i + chunk_size] for i in range(0, len(todo), chunk_size)]
    with partial.open("a") as fh:
        for chunk in tqdm(chunks, desc="base answers (chunks)", disable=None):
            for row in answer_rows(model, tokenizer, chunk, prompts, max_new_tokens, batch_size):
                done[row["id"]] = row
                fh.write(json.dumps(row) + "\n")
            fh.flush()
    rows = [done[str(r["id"])] for r in records]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(out)
    counts = {"records": len(rows), "resumed": len(records) - len(todo)}
    for prompt in prompts:
        prefix = "" if prompt == "paper3" else f"{prompt}_"
        counts[f"{prompt}_right"] = sum(r[f"{prefix}correct"] for r in rows)
        counts[f"{prompt}_whole_word"] = sum(r[f"{prefix}whole_word"] for r in rows)
    return counts
