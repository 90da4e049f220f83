"""Data sources: load one split from the hub, a local file/folder or a save_to_disk folder.

Split from smf.data.prepare so that loading, file checks and the generic row helpers (the `where`
and
`limit` filters, field readers, JSONL I/O) can be read apart from the three prepared schemas.
Every bad input raises :class:`DataError` naming the source and, where there is one, the record
index and the field. Nothing falls back to other data: a source that cannot be loaded is an error.
"""

from __future__ import annotations

import json
import math
import os
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

# Original-row index carried through filter/shuffle/limit so errors and ids point at the source.
ROW_COLUMN = "__smf_row__"
# Where each dataset's rows come from, so that errors name `file:line` (set_origin); a row's
# index is its position in the source, before any filter or shuffle.
_ORIGINS: dict[str, tuple[str, int]] = {}
LINE_OF_FIRST_ROW = {".jsonl": 1, ".csv": 2}  # a CSV's first line is its header


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


def source_name(source: Any) -> str:
    if isinstance(source, dict):
        if source.get("hub_id"):
            return str(source["hub_id"])
        if source.get("path"):
            return Path(source["path"]).name
    return "data"


# --------------------------------------------------------------------------------------------
# Row filters and field readers


def column_values(ds: datasets.Dataset, column: str) -> list:
    """All values of one column, fast (respects any indices mapping)."""
    return ds.select_columns([column]).to_dict()[column]


def as_number(value: Any) -> float | None:
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
    number = as_number(value)
    for candidate in allowed:
        if value == candidate:
            return True
        other = as_number(candidate)
        if number is not None and other is not None and number == other:
            return True
    return False


def apply_where(ds: datasets.Dataset, where: dict | None, name: str) -> datasets.Dataset:
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
        for i, value in enumerate(column_values(ds, column)):
            keep[i] = keep[i] and _matches(value, allowed_list)
    return ds.select([i for i, k in enumerate(keep) if k], keep_in_memory=True)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_limit(limit: int | None, name: str) -> None:
    if limit is not None and (not is_int(limit) or limit < 1):
        raise DataError(f"{name}: `limit` must be a positive integer or null, got {limit!r}")


def apply_limit(ds: datasets.Dataset, limit: int | None) -> datasets.Dataset:
    if limit is None or limit >= len(ds):
        return ds
    return ds.select(range(limit), keep_in_memory=True)


def set_origin(name: str, source: dict) -> None:
    """Record that dataset `name` is read from one local JSONL or CSV file (for `at`)."""
    path = Path(str(source.get("path") or ""))
    if source.get("path") and path.is_file() and path.suffix.lower() in LINE_OF_FIRST_ROW:
        _ORIGINS[name] = (str(source["path"]), LINE_OF_FIRST_ROW[path.suffix.lower()])
    else:
        _ORIGINS.pop(name, None)


def at(name: str, index: int) -> str:
    """Where row `index` (0-based, in source order) is: `file:line` (1-based) for one local
    JSONL/CSV file, else `name: record N` (1-based)."""
    if name in _ORIGINS:
        path, first = _ORIGINS[name]
        return f"{path}:{index + first}"
    return f"{name}: record {index + 1}"


def with_row_index(ds: datasets.Dataset, name: str) -> datasets.Dataset:
    if ROW_COLUMN in ds.column_names:
        raise DataError(f"{name}: column name {ROW_COLUMN!r} is reserved")
    return ds.add_column(ROW_COLUMN, list(range(len(ds))))


def require_nonempty(ds: datasets.Dataset, name: str, stats: dict) -> None:
    if len(ds) == 0:
        raise DataError(f"{name}: no records left after filtering ({stats}); check the filters")


def text_field(row: dict, field: str, name: str, index: int, *, allow_empty: bool) -> str:
    """A string field; None/missing is malformed, "" only where allowed ("nan" is content)."""
    value = row.get(field)
    if value is None:
        raise DataError(f"{at(name, index)}: field {field!r} is missing or null")
    if not isinstance(value, str):
        raise DataError(
            f"{at(name, index)}: field {field!r} must be a string, got {type(value).__name__}"
        )
    if not allow_empty and not value.strip():
        raise DataError(f"{at(name, index)}: field {field!r} is empty")
    return value


def optional_text(row: dict, field: str, name: str, index: int) -> str:
    value = row.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(
            f"{at(name, index)}: field {field!r} must be a string, got {type(value).__name__}"
        )
    return value


def record_id(row: dict, name: str, index: int, field: str = "id") -> str:
    """The source id if the source has one, else a stable `{name}-{original index}`."""
    if field not in row:
        return f"{name}-{index}"
    value = row[field]
    if is_int(value):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{at(name, index)}: field {field!r} is missing or empty")
    return value


def iter_rows(ds: datasets.Dataset, desc: str) -> Iterable[dict]:
    return tqdm(ds, total=len(ds), desc=desc, disable=None, leave=False)


# --------------------------------------------------------------------------------------------
# JSONL I/O


def write_jsonl(records: Iterable[dict], path: str | os.PathLike) -> Path:
    """Write one JSON object per line atomically (temp file + rename), creating parent dirs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for index, record in enumerate(records):
                if not isinstance(record, dict):
                    raise DataError(
                        f"{path}: record {index + 1} is {type(record).__name__}, not dict"
                    )
                try:
                    line = json.dumps(record, ensure_ascii=False, allow_nan=False)
                except (TypeError, ValueError) as err:
                    raise DataError(f"{path}: record {index + 1} is not valid JSON: {err}") from err
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
