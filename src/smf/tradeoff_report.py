"""The trade-off report: each arm's Pareto front of learning vs forgetting, and forgetting at
matched learning (paper 1's comparison), from cached eval JSONs.

An arm and its learning-rate sweep points (smf.sweeps) form a family. Every run of a family is
a point: its learning gain on the learning probe and its forgetting on one forgetting probe,
both the mean over seeds minus the base model, in display units (accuracy in points). The
family's front and its forgetting at the highest learning level that every family reaches come
from smf.tradeoff. With one learning rate per arm the front is the run and the origin (the base
model: a learning rate of zero), so the comparison is still defined, but it is only as good as
the fronts are dense: the table says how many rates each arm tried.

A run's learning gain also gets a 95 % interval over questions (smf.intervals, paired with the
base model on the same questions, of the per-question score averaged over seeds), from the
per-question verdicts every MCQ and QA eval JSON keeps (`answers`). A gain counts as measured
when that interval's half-width is below a quarter of the gain (`MEASURED_RATIO`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from smf import figures, report
from smf.intervals import CONFIDENCE, bootstrap_paired_difference
from smf.tradeoff import Point, forgetting_at_matched_learning, forgetting_of, pareto_front

FRONT_STYLE = {"linewidth": 1.2, "alpha": 0.9}
LEVEL_STYLE = {"color": "#555555", "linestyle": "--", "linewidth": 0.8}


def _display_scale(df: pd.DataFrame, probe: str) -> float:
    """Factor from a probe's stored value to display units (accuracy: x100, points)."""
    return report.METRICS[report.probe_meta(df, probe)["metric"]]["scale"]


def _scaled(df: pd.DataFrame, probe: str) -> tuple[pd.DataFrame, dict]:
    meta = report.probe_meta(df, probe)
    scale = report.METRICS[meta["metric"]]["scale"]
    rows = df[df["probe"] == probe].assign(value=lambda d: d["value"] * scale)
    return rows, meta


MEASURED_RATIO = 0.25  # a gain is measured when its 95 % interval's half-width is below this x gain


def _question_scores(path: str) -> dict[str, float] | None:
    """{question id: 1.0 or 0.0} from an eval JSON's per-question `answers` (None without)."""
    answers = json.loads(Path(path).read_text(encoding="utf-8")).get("answers")
    if answers is None:
        return None
    return {str(a["id"]): float(a["correct"]) for a in answers}


def gain_interval(df: pd.DataFrame, run: str, probe: str, scale: float) -> tuple[float, float]:
    """(low, high) of the run's gain over base on `probe`, bootstrapped over questions, in
    display units; (nan, nan) when the eval files keep no per-question answers."""
    rows = df[df["probe"] == probe]
    for arm in (report.REFERENCE_ARM, run):
        if rows[rows["arm"] == arm].empty:
            raise ValueError(f"eval results missing for arm {arm!r}, probe {probe!r}")
    base = _question_scores(rows[rows["arm"] == report.REFERENCE_ARM]["path"].iloc[0])
    paths = list(rows[rows["arm"] == run]["path"])
    seeds = [_question_scores(p) for p in paths]
    if base is None or any(s is None for s in seeds):
        return float("nan"), float("nan")
    ids = list(base)
    for path, scores in zip(paths, seeds, strict=True):
        if set(scores) != set(ids):
            raise ValueError(f"{path}: its questions differ from the base model's on {probe!r}")
    mean = np.mean([[scores[i] for i in ids] for scores in seeds], axis=0)
    interval = bootstrap_paired_difference(mean, [base[i] for i in ids])
    return interval.low * scale, interval.high * scale


def run_points(
    df: pd.DataFrame,
    runs: Sequence[str],
    learning_probe: str,
    forgetting_probe: str,
    intervals: Mapping[str, tuple[float, float]] | None = None,
) -> pd.DataFrame:
    """Per run: learning gain and forgetting vs base (mean over seeds) with their seed stds,
    and the learning gain's interval over questions (`learning_low`, `learning_high`; taken
    from `intervals` when given, bootstrapped here otherwise)."""
    learn, learn_meta = _scaled(df, learning_probe)
    forget, forget_meta = _scaled(df, forgetting_probe)
    scale = report.METRICS[learn_meta["metric"]]["scale"]
    out = []
    for run in runs:
        row = {"run": run}
        axes = (
            ("learning", learning_probe, learn, learn_meta),
            ("forgetting", forgetting_probe, forget, forget_meta),
        )
        for axis, probe, rows, meta in axes:
            base = rows[rows["arm"] == report.REFERENCE_ARM]["value"]
            values = rows[rows["arm"] == run]["value"]
            if base.empty or values.empty:
                missing = report.REFERENCE_ARM if base.empty else run
                raise ValueError(f"eval results missing for arm {missing!r}, probe {probe!r}")
            delta = values - base.mean()
            sign = 1.0 if axis == "learning" else forgetting_of(1.0, meta["higher_is_better"])
            row[axis] = sign * delta.mean()
            row[f"{axis}_std"] = delta.std(ddof=1) if len(delta) > 1 else 0.0
        row["seeds"] = len(values)
        interval = intervals[run] if intervals else gain_interval(df, run, learning_probe, scale)
        row["learning_low"], row["learning_high"] = interval
        out.append(row)
    return pd.DataFrame(out)


Points = dict[str, dict[str, pd.DataFrame]]  # forgetting probe -> family -> run_points


def tradeoff_points(
    df: pd.DataFrame,
    families: Mapping[str, Sequence[str]],
    learning_probe: str,
    forgetting_probes: Sequence[str],
) -> Points:
    """Every family's run_points against every forgetting probe; each run's learning interval
    is bootstrapped once and shared by all probes (the tables and the figure read these)."""
    scale = _display_scale(df, learning_probe)
    runs = [run for family in families.values() for run in family]
    intervals = {run: gain_interval(df, run, learning_probe, scale) for run in runs}
    return {
        probe: {
            family: run_points(df, family_runs, learning_probe, probe, intervals)
            for family, family_runs in families.items()
        }
        for probe in forgetting_probes
    }


def fronts_of(points: Mapping[str, pd.DataFrame]) -> dict[str, list[Point]]:
    """Each family's Pareto front (from the origin) on one forgetting probe."""
    return {
        f: pareto_front([Point(r.learning, r.forgetting, r.run) for r in p.itertuples()])
        for f, p in points.items()
    }


def matched_table(points: Points, learning_probe: str) -> pd.DataFrame:
    """Rows: families. Columns: rates tried, best learning gain, and per forgetting probe the
    forgetting at the matched level (NaN where a front does not reach it). attrs: the levels."""
    first = next(iter(points.values()))
    table = pd.DataFrame(index=pd.Index(list(first), name="arm"))
    table["runs"] = [len(p) for p in first.values()]
    table["best_learning"] = [p["learning"].max() for p in first.values()]
    levels = {}
    for probe, per_family in points.items():
        level, at = forgetting_at_matched_learning(fronts_of(per_family))
        levels[probe] = level
        table[f"{probe}_at_matched"] = [at[f] for f in per_family]
    table.attrs = {"levels": levels, "learning_probe": learning_probe}
    return table


def runs_table(points: Points) -> pd.DataFrame:
    """One row per run: its family, seeds, learning gain (seed std, interval over questions,
    whether it is measured) and forgetting per probe (seed std)."""
    probes = list(points)
    rows = []
    for family, first_points in points[probes[0]].items():
        for i, first in enumerate(first_points.itertuples()):
            row = {"run": first.run, "arm": family, "seeds": int(first.seeds)}
            for key in ("learning", "learning_std", "learning_low", "learning_high"):
                row[key] = getattr(first, key)
            half = (first.learning_high - first.learning_low) / 2
            row["measured"] = bool(first.learning > 0 and half < MEASURED_RATIO * first.learning)
            for probe in probes:
                at = points[probe][family].iloc[i]
                row[f"{probe}_forgetting"] = at["forgetting"]
                row[f"{probe}_forgetting_std"] = at["forgetting_std"]
            rows.append(row)
    return pd.DataFrame(rows).set_index("run")


def _runs_markdown(
    runs: pd.DataFrame, learning: str, forgetting_probes: Sequence[str]
) -> list[str]:
    pct = int(round(CONFIDENCE * 100))
    header = ["run", "seeds", f"{learning} gain (± seed std) [{pct} % CI over questions]"]
    header += [
        f"{report.PROBE_LABELS.get(p, p)} forgetting (± seed std)" for p in forgetting_probes
    ]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for run, row in runs.iterrows():
        ci = (
            "no per-question answers"
            if pd.isna(row["learning_low"])
            else f"[{row['learning_low']:+.2f}, {row['learning_high']:+.2f}]"
            + ("" if row["measured"] else " not measured")
        )
        cells = [run, str(row["seeds"]),
                 f"{row['learning']:+.2f} ± {row['learning_std']:.2f} {ci}"]  # fmt: skip
        for probe in forgetting_probes:
            cells.append(
                f"{row[f'{probe}_forgetting']:+.2f} ± {row[f'{probe}_forgetting_std']:.2f}"
            )
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_tradeoff_tables(table: pd.DataFrame, runs: pd.DataFrame, out: Mapping) -> None:
    """matched_learning.{csv,md} (the md also lists every run) and the runs' csv."""
    table.to_csv(out["csv"], float_format="%.6g")
    runs.to_csv(out["runs_csv"], float_format="%.6g")
    out_md = out["md"]
    learning = report.PROBE_LABELS.get(table.attrs["learning_probe"], table.attrs["learning_probe"])
    lines = [
        "| arm | runs | best learning gain | "
        + " | ".join(f"{report.PROBE_LABELS.get(p, p)} forgetting" for p in table.attrs["levels"])
        + " |",
        "|---|---|---|" + "---|" * len(table.attrs["levels"]),
    ]
    for arm, row in table.iterrows():
        cells = [arm, str(int(row["runs"])), f"{row['best_learning']:+.2f}"]
        for probe in table.attrs["levels"]:
            value = row[f"{probe}_at_matched"]
            cells.append("–" if pd.isna(value) else f"{value:+.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    notes = []
    for probe, level in table.attrs["levels"].items():
        name = report.PROBE_LABELS.get(probe, probe)
        notes.append(
            f"{name}: no learning level every arm reaches (some arm never gains)"
            if level is None
            else f"{name}: forgetting at a {learning} gain of {level:+.2f}, the highest every "
            "arm reaches, interpolated on each arm's Pareto front (origin = base model)"
        )
    lines += ["", "Forgetting is positive when worse than base (accuracy drop in points, "
              "perplexity increase). " + "; ".join(notes) + "."]  # fmt: skip
    lines += ["", "Every run (gains and forgetting vs base, means over seeds):", ""]
    lines += _runs_markdown(runs, learning, list(table.attrs["levels"]))
    pct = int(round(CONFIDENCE * 100))
    lines += ["", f"A gain is *measured* when its {pct} % interval over questions (paired "
              f"bootstrap against the base model) has a half-width below {MEASURED_RATIO:g} x "
              "the gain; runs marked 'not measured' are within noise."]  # fmt: skip
    Path(out_md).write_text("\n".join(lines) + "\n", encoding="utf-8")


def plot_pareto_fronts(
    points: Points, learning_probe: str, out_png: str | Path, out_pdf: str | Path
) -> None:
    """One panel per forgetting probe: every run (x error bars: the learning gain's 95 %
    interval over questions; y: std over seeds) and each family's front from the origin; the
    matched learning level as a dashed line."""
    forgetting_probes = list(points)
    colors = figures.arm_colors(list(points[forgetting_probes[0]]))
    width, height = figures.PANEL_SIZE
    with matplotlib.rc_context(figures.STYLE):
        fig = Figure(figsize=(width * len(forgetting_probes), height), layout="constrained")
        axes = fig.subplots(1, len(forgetting_probes), squeeze=False)[0]
        for ax, probe in zip(axes, forgetting_probes, strict=True):
            fronts = fronts_of(points[probe])
            for i, (family, pts) in enumerate(points[probe].items()):
                color = colors[family]
                marker = figures.MARKERS[i % len(figures.MARKERS)]
                xerr = np.vstack([pts["learning"] - pts["learning_low"],
                                  pts["learning_high"] - pts["learning"]])  # fmt: skip
                ax.errorbar(
                    pts["learning"], pts["forgetting"],
                    xerr=None if np.isnan(xerr).any() else xerr,
                    yerr=pts["forgetting_std"], fmt=marker, color=color, capsize=2,
                    label=f"{family} ({len(pts)} lr)",
                )  # fmt: skip
                front = fronts[family]
                ax.plot([p.learning for p in front], [p.forgetting for p in front], color=color,
                        **FRONT_STYLE)  # fmt: skip
            level, _ = forgetting_at_matched_learning(fronts)
            if level is not None:
                ax.axvline(level, **LEVEL_STYLE)
            ax.scatter([0], [0], marker=figures.BASE_MARKER, color="black", zorder=3)
            learn_label = report.PROBE_LABELS.get(learning_probe, learning_probe)
            ax.set_xlabel(f"{learn_label} gain vs base (↑ learned)")
            ax.set_ylabel(f"{report.PROBE_LABELS.get(probe, probe)} forgetting vs base (↓ kept)")
            ax.set_title(f"Pareto fronts: {report.PROBE_LABELS.get(probe, probe)}")
        axes[0].legend(loc="best")
        figures.save_figure(fig, out_png, out_pdf)
