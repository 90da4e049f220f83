"""What every SMF run of an experiment did to its memory, as a table: per run and memory layer,
the slots a step read, the rows it selected, whether selection was vacuous (`top_t` at least
the slots read, so "the top t" is every slot read), and the memory branch's output size next
to the MLP's before and after training (is the memory inert?).

The numbers come from each run's summary.json (`diagnostics`, smf.training.diagnostics); this
module only lays them out, so the table rebuilds from cache in milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

COLUMNS = [
    "arm", "method", "lr", "seed", "top_t", "layer", "steps", "slots_read_median",
    "rows_selected_mean", "fraction_selected_mean", "vacuous_fraction", "vacuous_layer",
    "selection_vacuous", "memory_mlp_ratio_start", "memory_mlp_ratio_end",
]  # fmt: skip
NO_RUNS = "No SMF run in this experiment: nothing to diagnose."


def diagnostics_rows(summary: dict, source: str = "?") -> list[dict]:
    """One row per memory layer of one SMF run's summary.json."""
    diag = summary.get("diagnostics")
    if not diag:
        raise ValueError(f"{source}: an SMF run's summary.json without `diagnostics`")
    layers = diag["selection"]["layers"]
    ratio = diag["memory_output_ratio"]
    rows = []
    for layer in sorted(set(layers) | set(ratio["start"]), key=int):
        sel = layers.get(layer, {})
        rows.append(
            {
                "arm": summary["arm"],
                "method": summary.get("method"),
                "lr": summary["train"]["lr"],
                "seed": summary["seed"],
                "top_t": summary.get("top_t"),
                "layer": int(layer),
                "steps": sel.get("steps"),
                "slots_read_median": sel.get("slots_read_median"),
                "rows_selected_mean": sel.get("rows_selected_mean"),
                "fraction_selected_mean": sel.get("fraction_selected_mean"),
                "vacuous_fraction": sel.get("vacuous_fraction"),
                "vacuous_layer": sel.get("vacuous"),
                "selection_vacuous": diag["selection_vacuous"],
                "memory_mlp_ratio_start": ratio["start"].get(layer, {}).get("ratio"),
                "memory_mlp_ratio_end": ratio["end"].get(layer, {}).get("ratio"),
            }
        )
    return rows


def diagnostics_table(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Every run's rows, ordered by arm, learning rate, seed and layer."""
    rows = []
    for path in paths:
        rows += diagnostics_rows(json.loads(Path(path).read_text()), str(path))
    df = pd.DataFrame(rows, columns=COLUMNS)
    return df.sort_values(["arm", "lr", "seed", "layer"], kind="stable").reset_index(drop=True)


def write_diagnostics_tables(paths: Sequence[str | Path], csv: str | Path, md: str | Path) -> None:
    """tables/smf_diagnostics.{csv,md}; with no SMF run, a header-only csv and a one-line md."""
    df = diagnostics_table(paths)
    df.to_csv(csv, index=False)
    if df.empty:
        Path(md).write_text(NO_RUNS + "\n")
        return
    shown = df.rename(
        columns={
            "slots_read_median": "slots read / step (median)",
            "rows_selected_mean": "rows selected (mean)",
            "fraction_selected_mean": "fraction selected",
            "vacuous_fraction": "vacuous steps",
            "memory_mlp_ratio_start": "memory/MLP RMS, start",
            "memory_mlp_ratio_end": "memory/MLP RMS, end",
        }
    ).drop(columns=["steps", "vacuous_layer", "method"])
    text = (
        "SMF diagnostics per run and memory layer (smf/report/smf_diagnostics.py). A step is "
        "vacuous in a layer when `top_t` is at least the slots it read there (selection keeps "
        "every slot read); a run is flagged `selection_vacuous` when a layer is vacuous in more "
        "than half its steps. memory/MLP RMS: the memory branch's output (alpha * memory(x)) "
        "against the MLP output beside it, on the same texts before and after training.\n\n"
        + shown.to_markdown(index=False, floatfmt=".3g")
        + "\n"
    )
    Path(md).write_text(text)
