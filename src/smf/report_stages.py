"""What the report rules call: tables and figures rebuilt from cached files.

Apart from smf.stages on purpose: these jobs only read JSON and draw, so they must not pay for
importing torch and transformers (tests/test_report_stages.py checks that they do not).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from smf import figures, report, tradeoff_report


def build_tables(
    eval_paths: list[str],
    arms_order: list[str],
    probe_order: list[str],
    out: dict,
    note: str | None = None,
) -> pd.DataFrame:
    """main.csv / .md / .tex from cached eval JSONs; no model is loaded."""
    df = report.load_eval_results(eval_paths)
    table = report.main_table(df, row_order=arms_order, probe_order=probe_order)
    metrics = {p: table.attrs["metric"][p] for p in probe_order}
    report.write_tables(table, out["csv"], out["md"], out["tex"], metrics=metrics, note=note)
    return table


def build_figures(
    eval_paths: list[str],
    log_paths: dict[str, list[str]],
    learning_probe: str,
    forgetting_probes: list[str],
    out: dict,
) -> None:
    """Learning vs forgetting per probe, and the training loss curves."""
    df = report.load_eval_results(eval_paths)
    figures.plot_learning_vs_forgetting(
        df, learning_probe, forgetting_probes, out["tradeoff_png"], out["tradeoff_pdf"]
    )
    logs = figures.load_train_logs({arm: [Path(p) for p in ps] for arm, ps in log_paths.items()})
    figures.plot_loss_curves(logs, out["loss_png"], out["loss_pdf"])


def build_tradeoff(
    eval_paths: list[str],
    families: dict[str, list[str]],
    learning_probe: str,
    forgetting_probes: list[str],
    out: dict,
) -> pd.DataFrame:
    """Pareto fronts over each arm's learning-rate sweep and forgetting at matched learning."""
    df = report.load_eval_results(eval_paths)
    points = tradeoff_report.tradeoff_points(df, families, learning_probe, forgetting_probes)
    table = tradeoff_report.matched_table(points, learning_probe)
    tradeoff_report.write_tradeoff_tables(table, tradeoff_report.runs_table(points), out)
    tradeoff_report.plot_pareto_fronts(points, learning_probe, out["png"], out["pdf"])
    return table
