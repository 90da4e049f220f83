"""The SMF diagnostics table: one row per run and memory layer, laid out from summary.json."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from smf.report.smf_diagnostics import NO_RUNS, diagnostics_table, write_diagnostics_tables
from smf.training.diagnostics import selection_summary


def _step(read: dict[str, int], top_t: int) -> dict:
    kept = {k: min(v, top_t) for k, v in read.items()}
    return {
        "slots_read": read,
        "rows_selected": kept,
        "fraction_selected": {k: kept[k] / read[k] for k in read},
        "selection_vacuous": {k: top_t >= read[k] for k in read},
    }


def _summary(arm: str, lr: float, seed: int, reads: list[dict[str, int]], top_t: int) -> dict:
    ratio = {"start": {"1": {"ratio": 0.1}, "3": {"ratio": 0.05}},
             "end": {"1": {"ratio": 2.0}, "3": {"ratio": 1.5}}}  # fmt: skip
    selection = selection_summary([_step(r, top_t) for r in reads], top_t)
    return {
        "arm": arm, "kind": "smf", "seed": seed, "method": "tfidf", "top_t": top_t,
        "train": {"lr": lr},
        "diagnostics": {
            "selection_vacuous": selection["selection_vacuous"],
            "selection": selection,
            "memory_output_ratio": {**ratio, "texts": 4, "definition": "test"},
        },
    }  # fmt: skip


def test_table_has_a_row_per_run_and_layer_with_the_vacuous_flag(tmp_path) -> None:
    vacuous = _summary("smf", 1.0, 0, [{"1": 900, "3": 2000}] * 3, top_t=1024)
    selective = _summary("smf_lr3", 3.0, 1, [{"1": 4000, "3": 2000}] * 3, top_t=1024)
    paths = []
    for i, s in enumerate([selective, vacuous]):
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps(s))
    df = diagnostics_table(paths)
    assert list(zip(df["arm"], df["layer"], strict=True)) == [
        ("smf", 1), ("smf", 3), ("smf_lr3", 1), ("smf_lr3", 3)
    ]  # fmt: skip
    first = df.iloc[0]
    assert first["slots_read_median"] == 900 and first["rows_selected_mean"] == 900
    assert bool(first["vacuous_layer"]) and bool(first["selection_vacuous"])
    assert first["memory_mlp_ratio_start"] == 0.1 and first["memory_mlp_ratio_end"] == 2.0
    later = df[df["arm"] == "smf_lr3"]
    assert not later["selection_vacuous"].any()
    assert later["fraction_selected_mean"].tolist() == pytest.approx([1024 / 4000, 1024 / 2000])
    write_diagnostics_tables(paths, tmp_path / "d.csv", tmp_path / "d.md")
    assert len(pd.read_csv(tmp_path / "d.csv")) == 4
    assert "vacuous" in (tmp_path / "d.md").read_text()


def test_no_smf_runs_write_a_note_and_a_summary_without_diagnostics_is_named(tmp_path) -> None:
    write_diagnostics_tables([], tmp_path / "d.csv", tmp_path / "d.md")
    assert (tmp_path / "d.md").read_text().strip() == NO_RUNS
    assert pd.read_csv(tmp_path / "d.csv").empty
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"arm": "smf", "seed": 0, "train": {"lr": 1.0}}))
    with pytest.raises(ValueError, match="bad.json"):
        diagnostics_table([bad])
