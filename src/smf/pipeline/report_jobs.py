"""What the report rules call: tables and figures rebuilt from cached files.

Apart from smf.pipeline.stages on purpose: these jobs only read JSON and draw, so they must not pay
for
importing torch and transformers (tests/pipeline/test_report_stages.py checks that they do not).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from smf.report import (
    chance,
    comparisons,
    figures,
    gold,
    paper_tables,
    pareto_plot,
    tradeoff_tables,
)


def build_tables(
    eval_paths: list[str],
    arms_order: list[str],
    probe_order: list[str],
    out: dict,
    note: str | None = None,
) -> pd.DataFrame:
    """main.csv / .md / .tex from cached eval JSONs; no model is loaded."""
    df = paper_tables.load_eval_results(eval_paths)
    table = paper_tables.main_table(df, row_order=arms_order, probe_order=probe_order)
    metrics = {p: table.attrs["metric"][p] for p in probe_order}
    paper_tables.write_tables(table, out["csv"], out["md"], out["tex"], metrics=metrics, note=note)
    return table


def build_figures(
    eval_paths: list[str],
    log_paths: dict[str, list[str]],
    learning_probe: str,
    forgetting_probes: list[str],
    out: dict,
) -> None:
    """Learning vs forgetting per probe, and the training loss curves."""
    df = paper_tables.load_eval_results(eval_paths)
    figures.plot_learning_vs_forgetting(
        df, learning_probe, forgetting_probes, out["tradeoff_png"], out["tradeoff_pdf"]
    )
    logs = figures.load_train_logs({arm: [Path(p) for p in ps] for arm, ps in log_paths.items()})
    figures.plot_loss_curves(logs, out["loss_png"], out["loss_pdf"])


def build_tradeoff(
    eval_paths: list[str],
    families: dict[str, list[str]],
    lrs: dict[str, float],
    learning_probe: str,
    forgetting_probes: list[str],
    out: dict,
    settings: dict | None = None,
    data_paths: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Every run's gain and forgetting, forgetting on a grid of learning levels and paired
    differences between arms, all with intervals over seeds and questions; the figure; the
    change in gold-answer log-probability per run where the eval JSONs keep it (gold_csv,
    gold_md; smf.report.gold), and the same trade-off matched on it (gold_matched_*)."""
    df = paper_tables.load_eval_results(eval_paths)
    cmp = comparisons.compare(
        df, families, lrs, learning_probe, forgetting_probes,
        comparisons.Settings.from_config(settings),
    )  # fmt: skip
    runs = comparisons.runs_table(cmp)
    levels, diffs = comparisons.at_levels(cmp)
    if "gold_csv" in out:  # absent only in a DAG parsed before these outputs existed
        cmp.gold = gold.write_gold_tables(df, cmp, out["gold_csv"], out["gold_md"])
    rows = df[df["probe"] == learning_probe]
    chance_of = chance.probe_chance(
        rows["kind"].iloc[0], (data_paths or {}).get(learning_probe), list(rows["path"])
    )
    tradeoff_tables.write_tradeoff_tables(
        cmp, runs, levels, diffs, out, {learning_probe: chance_of}
    )
    if "gold_matched_md" in out:  # absent only in a DAG parsed before these outputs existed
        gold.write_gold_matched(cmp, cmp.gold, out, {})
    pareto_plot.plot_pareto_fronts(cmp, runs, out["png"], out["pdf"])
    return levels
