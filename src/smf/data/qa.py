"""qa records (prepared schema: {"id", "question", "answer", "aliases": [str, ...]}, the
aliases include the answer) from TriviaQA, llm-foundry, NaturalQuestions or plain columns.
"""

from __future__ import annotations

import re
from typing import Any

import datasets

from smf.data import sources
from smf.data.sources import DataError

FOUNDRY_CONTEXT = re.compile(r"\AQuestion:\s*(?P<question>.*?)\s*\nAnswer:\s*\Z", re.DOTALL)


def prepare_qa(
    ds: datasets.Dataset, *, name: str, limit: int | None = None
) -> tuple[list[dict], dict]:
    """TriviaQA (HF rc.nocontext, llm-foundry `context` format, or plain) or NaturalQuestions
    (nq_open: an answer list, the first taken as the answer, all as aliases) -> qa records."""
    sources.check_limit(limit, name)
    columns = set(ds.column_names)
    if "answer" not in columns:
        raise DataError(f"{name}: no 'answer' column; columns are {sorted(columns)}")
    if isinstance(ds.features["answer"], dict):
        source_format = "hf_triviaqa"
    elif isinstance(ds.features["answer"], (datasets.List, datasets.Sequence)):
        source_format = "nq_open"  # google-research-datasets/nq_open: answer is a list
    elif "context" in columns:
        source_format = "llm_foundry"
    elif "question" in columns:
        source_format = "plain"
    else:
        raise DataError(
            f"{name}: unrecognised QA columns {sorted(columns)}; expected HF TriviaQA "
            "(question, question_id, answer{value, aliases}), NaturalQuestions nq_open "
            "(question, answer[list]), llm-foundry (context, answer, aliases) or plain "
            "(question, answer, aliases)"
        )
    rows_in = len(ds)
    ds = sources.apply_limit(sources.with_row_index(ds, name), limit)
    stats = {
        "name": name,
        "format": source_format,
        "rows_in": rows_in,
        "rows_dropped_by_limit": rows_in - len(ds),
        "rows_dropped_malformed": 0,
        "rows_out": len(ds),
    }
    sources.require_nonempty(ds, name, stats)
    records = [
        _qa_record(row, name, source_format) for row in sources.iter_rows(ds, f"prepare {name}")
    ]
    stats["empty_aliases_dropped"] = sum(r.pop("empty_aliases") for r in records)
    return records, stats


def _qa_record(row: dict, name: str, source_format: str) -> dict:
    index = row[sources.ROW_COLUMN]
    if source_format == "hf_triviaqa":
        answer_struct = row["answer"]
        if not isinstance(answer_struct, dict):
            raise DataError(f"{sources.at(name, index)}: field 'answer' is missing or null")
        answer = sources.text_field(answer_struct, "value", name, index, allow_empty=False)
        aliases = answer_struct.get("aliases")
        question = sources.text_field(row, "question", name, index, allow_empty=False)
        record_id = sources.record_id(row, name, index, field="question_id")
    elif source_format == "nq_open":
        aliases = row["answer"]
        if not aliases or not isinstance(aliases[0], str) or not aliases[0].strip():
            raise DataError(f"{sources.at(name, index)}: field 'answer' has no answer: {aliases!r}")
        answer = aliases[0]
        question = sources.text_field(row, "question", name, index, allow_empty=False)
        record_id = sources.record_id(row, name, index)
    else:
        answer = sources.text_field(row, "answer", name, index, allow_empty=False)
        aliases = row.get("aliases", [answer])  # plain format: aliases optional
        record_id = sources.record_id(row, name, index)
        if source_format == "llm_foundry":
            context = sources.text_field(row, "context", name, index, allow_empty=False)
            match = FOUNDRY_CONTEXT.match(context)
            if match is None or not match["question"]:
                raise DataError(
                    f"{sources.at(name, index)}: field 'context' {context!r} is not "
                    "'Question: <q>\\nAnswer:'"
                )
            question = match["question"]
        else:
            question = sources.text_field(row, "question", name, index, allow_empty=False)
    cleaned, empty = _clean_aliases(aliases, answer, name, index)
    return {
        "id": record_id,
        "question": question,
        "answer": answer,
        "aliases": cleaned,
        "empty_aliases": empty,
    }


def _clean_aliases(aliases: Any, answer: str, name: str, index: int) -> tuple[list[str], int]:
    """Deduplicated aliases in source order, with the answer value first if it was missing,
    and how many empty aliases were dropped (one would match every prediction; the record's
    other aliases still count, so the record is kept and the count lands in the stats)."""
    if not isinstance(aliases, list):
        raise DataError(
            f"{sources.at(name, index)}: field 'aliases' must be a list, got {aliases!r}"
        )
    cleaned: list[str] = []
    empty = 0
    for alias in aliases:
        if not isinstance(alias, str):
            raise DataError(f"{sources.at(name, index)}: field 'aliases' has bad entry {alias!r}")
        if not alias.strip():
            empty += 1
        elif alias not in cleaned:
            cleaned.append(alias)
    if answer not in cleaned:
        cleaned.insert(0, answer)
    return cleaned, empty


# --------------------------------------------------------------------------------------------
