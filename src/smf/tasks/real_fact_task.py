"""Issue 27's real-fact task from the base model's cached answers (rule real_fact_task).

The cached rows (`smf.probes.base_answers`) carry the greedy output under each cached prompt.
F is drawn from questions the base model gets wrong under *every* cached prompt, K from those it
gets right (an alias as whole words) under `known_prompt`; `smf.tasks.real_facts.select_facts`
keeps F and K apart (no question, no answer shared). `smf.tasks.real_fact_templates` writes the
training texts and the probes. No model runs here: the task is a pure function of the cache and
the settings, so the same seed gives byte-identical files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from smf.data.prompts import PAPER3
from smf.tasks import real_fact_templates as templates
from smf.tasks.real_facts import (
    SelectionSizes,
    Shortfall,
    is_correct,
    random_answer_chance,
    select_facts,
)

# the output field of each prompt in a cached row (paper3 keeps the lab's plain `output`)
OUTPUT_FIELD = {"paper3": "output", "chat": "chat_output"}
SELECTION_FILE = "selection.json"
CONFIG_KEY = "real_fact_task"


def check_spec(spec: Mapping, data: Mapping[str, Mapping]) -> None:
    """Config errors a job would only meet later: the pool is not a qa `data` entry, K's prompt
    is not cached, or the wordings are not a readable design (raises ValueError)."""
    entry = data.get(spec["dataset"])
    if entry is None or entry.get("kind") != "qa":
        raise ValueError(
            f"{CONFIG_KEY}.dataset: {spec['dataset']!r} is not a `data` entry of kind qa"
        )
    if spec["known_prompt"] not in spec["prompts"]:
        raise ValueError(
            f"{CONFIG_KEY}.known_prompt: {spec['known_prompt']!r} is not among "
            f"{CONFIG_KEY}.prompts {list(spec['prompts'])}"
        )
    try:
        templates.check_wordings(spec["trained"], spec["held_out"], spec["taught"])
    except ValueError as err:
        raise ValueError(f"{CONFIG_KEY}.trained/held_out/taught: {err}") from None


def selection_pool(
    answers: Sequence[Mapping], prompts: Sequence[str], known_prompt: str
) -> list[dict]:
    """Rows select_facts may draw from, `output` being the known prompt's: the ones right under
    `known_prompt` (K's candidates) and the ones wrong under every cached prompt (F's); a row
    right under another prompt only is neither a fact to teach nor one to keep."""
    if known_prompt not in prompts:
        raise ValueError(
            f"{CONFIG_KEY}.known_prompt: {known_prompt!r} is not among "
            f"{CONFIG_KEY}.prompts {list(prompts)}"
        )
    pool = []
    for row in answers:
        verdicts = {p: is_correct(row[OUTPUT_FIELD[p]], row["aliases"], PAPER3) for p in prompts}
        if verdicts[known_prompt] or not any(verdicts.values()):
            pool.append({**row, "output": row[OUTPUT_FIELD[known_prompt]]})
    return pool


def shortfall_message(err: Shortfall, spec: Mapping, n_rows: int) -> str:
    """The config key to change, and what the records held, for a set that cannot be filled."""
    where = f"records 0-{n_rows - 1}"
    if err.which == "n_known":
        return (
            f"{CONFIG_KEY}.n_known: {err.wanted} wanted, {err.got} usable right (an alias as whole "
            f"words, {spec['known_prompt']} prompt, {err.counts['right']} right by substring) in "
            f"{where}; raise {CONFIG_KEY}.records, lower {CONFIG_KEY}.n_known, or cache and use "
            f"the chat prompt ({CONFIG_KEY}.prompts: [paper3, chat], known_prompt: chat)"
        )
    return (
        f"{CONFIG_KEY}.n_facts: {err.wanted} wanted, {err.got} teachable wrong answers (of "
        f"{err.counts['wrong']} wrong, {err.counts['wrong_teachable']} with answers of at most "
        f"{spec['max_answer_words']} words) in {where}; raise {CONFIG_KEY}.records or "
        f"{CONFIG_KEY}.max_answer_words, or lower {CONFIG_KEY}.n_facts"
    )


def build_real_fact_task(
    answers: Sequence[Mapping], spec: Mapping
) -> tuple[dict[str, list[dict]], dict]:
    """Every file's rows (templates.REAL_FACT_FILES) and a selection report (counts, chance
    baselines, wordings) from the first `spec['records']` cached rows."""
    rows = list(answers)[: spec["records"]]
    if len(rows) < spec["records"]:
        raise ValueError(
            f"{CONFIG_KEY}.records: {spec['records']} wanted, the cached answers have {len(rows)}"
        )
    pool = selection_pool(rows, spec["prompts"], spec["known_prompt"])
    sizes = SelectionSizes(
        n_facts=spec["n_facts"],
        n_known=spec["n_known"],
        max_answer_words=spec["max_answer_words"],
        max_gold_logprob=spec["max_gold_logprob"],
    )
    try:
        split = select_facts(pool, sizes, seed=spec["seed"], protocol=PAPER3)
    except Shortfall as err:
        raise ValueError(shortfall_message(err, spec, len(rows))) from None
    trained = tuple(spec["trained"])
    task = templates.build_task(split.facts, split.known, trained, spec["held_out"], spec["taught"])
    report = {
        **split.counts,
        "records": len(rows),
        "pool": len(pool),
        "prompts": list(spec["prompts"]),
        "known_prompt": spec["known_prompt"],
        "trained": list(trained),
        "held_out": spec["held_out"],
        "taught": spec["taught"],
        "fact_ids": [r["id"] for r in split.facts],
        "known_ids": [r["id"] for r in split.known],
        # answering each question with another one's gold answer (substring match counts)
        "chance_facts": random_answer_chance(split.facts) if len(split.facts) > 1 else None,
        "chance_known": random_answer_chance(split.known) if len(split.known) > 1 else None,
    }
    return task, report


def write_task_from_answers(
    answers: Sequence[Mapping], spec: Mapping, out_dir: str | Path
) -> dict[str, Path]:
    """Build the task, check no held-out prompt leaked into training, write every file and
    the selection report (selection.json) into `out_dir`."""
    task, report = build_real_fact_task(answers, spec)
    paths = templates.write_real_fact_task(out_dir, task)
    path = Path(out_dir) / SELECTION_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    tmp.replace(path)
    return {**paths, "selection": path}
