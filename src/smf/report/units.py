"""Perplexity's scoring units from cached eval JSONs, so the trade-off report can resample them.

A perplexity eval JSON (smf.probes.perplexity) keeps its losses per unit: paper3 per sliding
window (`window_nll`, summed NLL, and `window_tokens`, the tokens it scored), lm_eval per page
(`page_nll` and `page_words`; word perplexity). The value is exp(sum nll / sum count). Where every
file of a comparison keeps them for the same number of units (the same text), the report draws
units together with seeds, paired across runs and the base model like questions
(smf.report.bootstrap.ratios). Older caches keep one number per model: then `probe_units` is None
and the probe is resampled over seeds only, as the tables say.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# loss key -> (count key, what the tables call the units)
UNIT_KEYS = {"window_nll": ("window_tokens", "windows"), "page_nll": ("page_words", "pages")}


@dataclass(frozen=True)
class Units:
    """Per-unit summed losses and counts: the base model's files (f, n), each run's seeds (s, n)."""

    name: str  # "windows" or "pages"
    base_nll: np.ndarray
    base_count: np.ndarray
    nll: dict[str, np.ndarray]
    count: dict[str, np.ndarray]

    @property
    def n(self) -> int:
        return int(self.base_nll.shape[1])


def read_units(path: str) -> tuple[str, list[float], list[float]] | None:
    """(units' name, summed losses, counts) of one eval JSON; None when it keeps none."""
    record = json.loads(Path(path).read_text(encoding="utf-8"))
    for loss_key, (count_key, name) in UNIT_KEYS.items():
        if loss_key in record and count_key in record:
            nll, count = record[loss_key], record[count_key]
            if len(nll) != len(count) or not nll:
                raise ValueError(f"{path}: {loss_key}, {count_key}: empty or of other lengths")
            return name, nll, count
    return None


def probe_units(base_paths: Sequence[str], run_paths: Mapping[str, Sequence[str]]) -> Units | None:
    """A probe's Units when every file keeps them; None when any lacks them (older caches).
    Files scored on different texts (other unit counts or kinds) are an error naming the run."""
    base = [read_units(p) for p in base_paths]
    runs = {run: [read_units(p) for p in paths] for run, paths in run_paths.items()}
    if any(u is None for u in base) or any(u is None for us in runs.values() for u in us):
        return None
    name, length = base[0][0], len(base[0][1])
    for who, files in [("base", base), *runs.items()]:
        odd = [u for u in files if u[0] != name or len(u[1]) != length]
        if odd:
            raise ValueError(
                f"{who}: perplexity scored on {len(odd[0][1])} {odd[0][0]}, the base model on "
                f"{length} {name}: not the same text"
            )

    def stack(files, column):
        return np.array([u[column] for u in files], dtype=np.float64)

    return Units(
        name,
        stack(base, 1),
        stack(base, 2),
        {run: stack(files, 1) for run, files in runs.items()},
        {run: stack(files, 2) for run, files in runs.items()},
    )
