"""text records (prepared schema: {"text"}) from one string column."""

from __future__ import annotations

import datasets
from tqdm.auto import tqdm

from smf.data import sources
from smf.data.sources import DataError


def prepare_text(
    ds: datasets.Dataset,
    *,
    name: str,
    column: str = "text",
    where: dict | None = None,
    min_chars: int = 0,
    shuffle_seed: int | None = None,
    limit: int | None = None,
    keep_empty: bool = False,
) -> tuple[list[dict], dict]:
    """Text rows -> {"text"} records; order where -> drop empty / short -> shuffle -> limit.

    The shuffle comes after every filter, as paper 3 shuffles its filtered OASST1 replies:
    `where`, `min_chars` 50, seed s and `limit` 2,000 select the rows of
    `ds.filter(...).shuffle(seed=s).select(range(2000))`.
    keep_empty=True keeps blank rows verbatim (WikiText protocols need the exact HF rows).
    Non-blank text is never altered.
    """
    sources.check_limit(limit, name)
    if shuffle_seed is not None and not sources.is_int(shuffle_seed):
        raise DataError(f"{name}: `shuffle_seed` must be an integer or null, got {shuffle_seed!r}")
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
    if shuffle_seed is not None:  # datasets' own permutation of the filtered rows
        order = datasets.Dataset.from_dict({"i": range(len(keep))})
        keep = [keep[i] for i in order.shuffle(seed=shuffle_seed, keep_in_memory=True)["i"]]
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
        "shuffle_seed": shuffle_seed,
    }
    if not records:
        raise DataError(f"{name}: no records left after filtering ({stats}); check the filters")
    if stats["rows_empty_kept"] == len(records):
        raise DataError(
            f"{name}: no usable records: all {len(records)} rows are blank (kept by "
            "`keep_empty: true`); check the source and its split"
        )
    return records, stats
