"""Figures for the paper: learning vs forgetting and training loss curves.

Apart from smf.report.paper_tables, which keeps the eval schema and the tables: the figures share a
style,
arm colours and markers (smf.report.comparisons draws with them too), and the loss curves read the
training logs (results/{experiment}/runs/{arm}/seed{seed}/train_log.jsonl). Figures are drawn on
``matplotlib.figure.Figure`` objects directly (Agg canvas), never through pyplot, so no GUI
backend or global figure state is ever touched.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from smf.report.paper_tables import (
    METRICS,
    PROBE_LABELS,
    REFERENCE_ARM,
    check_unique,
    is_number,
    probe_meta,
)

__all__ = [
    "plot_learning_vs_forgetting",
    "load_train_logs",
    "plot_loss_curves",
]

# ---------------------------------------------------------------------------------------------
# Constants: display units, log schema, figure style
# ---------------------------------------------------------------------------------------------

DELTA_UNITS = {"accuracy": "pp; ", "perplexity": ""}  # accuracy deltas are percentage points
LOG_KEYS = ("step", "loss", "lr", "rows_updated")
SEED_DIR = re.compile(r"^seed(\d+)$")

PNG_DPI = 150
PANEL_SIZE = (4.2, 3.6)  # inches per learning-vs-forgetting panel
LOSS_FIG_SIZE = (6.0, 3.8)
# Fixed colours for the paper's arms so every figure agrees; other arms take the rest in order.
ARM_COLORS = {
    "base": "#000000",
    "retrofit": "#7f7f7f",
    "full": "#d62728",
    "lora": "#ff7f0e",
    "smf_tfidf": "#1f77b4",
    "smf_kl": "#2ca02c",
}
EXTRA_COLORS = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
MARKERS = ("o", "s", "D", "^", "v", "P", "X", "h")
BASE_MARKER = "*"
BETTER_REGION_COLOR = "#2ca02c"
BETTER_REGION_ALPHA = 0.07
BAND_ALPHA = 0.2
SMOOTH_DIVISOR = 100  # auto smoothing window = number of logged steps // this (about 1% of a run)
LOG_Y_RATIO = 10.0  # auto log-scale when the plotted loss spans more than this factor
STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "pdf.fonttype": 42,  # embed TrueType so text stays editable/searchable in the PDF
    "ps.fonttype": 42,
}


# ---------------------------------------------------------------------------------------------
# Learning vs forgetting figure
# ---------------------------------------------------------------------------------------------


def arm_colors(arms: list[str]) -> dict[str, str]:
    """Fixed colours for known arms, the spare palette in order for the rest."""
    spare = itertools.cycle(EXTRA_COLORS)
    return {arm: ARM_COLORS[arm] if arm in ARM_COLORS else next(spare) for arm in arms}


def _seed_deltas(df: pd.DataFrame, arm: str, probe: str, base_value: float) -> pd.Series:
    """Per-seed change vs base in display units (pp for accuracy), indexed by seed."""
    rows = df[(df["arm"] == arm) & (df["probe"] == probe)]
    if rows.empty:
        raise ValueError(f"eval results missing for (arm={arm!r}, probe={probe!r})")
    scale = METRICS[rows["metric"].iloc[0]]["scale"]
    deltas = (rows["value"] - base_value) * scale
    return pd.Series(deltas.to_numpy(), index=rows["seed"].fillna(-1).to_numpy()).sort_index()


def _base_value(df: pd.DataFrame, probe: str) -> float:
    rows = df[(df["arm"] == REFERENCE_ARM) & (df["probe"] == probe)]
    if rows.empty:
        raise ValueError(f"eval results missing for (arm={REFERENCE_ARM!r}, probe={probe!r})")
    return float(rows["value"].mean())


def _axis_label(probe: str, meta: dict, probe_labels: Mapping[str, str]) -> str:
    unit = DELTA_UNITS[meta["metric"]]
    better = "higher" if meta["higher_is_better"] else "lower"
    return f"Δ {probe_labels.get(probe, probe)} {meta['metric']} ({unit}{better} is better)"


def _shade_better_quadrant(ax, y_higher_is_better: bool) -> None:
    """Lightly shade the quadrant where the task improves and the forgetting probe does not."""
    ax.autoscale_view()
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    ys = (0.0, y1) if y_higher_is_better else (y0, 0.0)
    ax.fill_between(
        [0.0, x1], *ys, color=BETTER_REGION_COLOR, alpha=BETTER_REGION_ALPHA, lw=0, zorder=0
    )
    corner_y, va = (y1, "top") if y_higher_is_better else (y0, "bottom")
    ax.annotate(
        "better",
        (x1, corner_y),
        xytext=(-4, -4 if va == "top" else 4),
        textcoords="offset points",
        ha="right",
        va=va,
        style="italic",
        color=BETTER_REGION_COLOR,
    )
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)


def plot_learning_vs_forgetting(
    df: pd.DataFrame,
    learning_probe: str,
    forgetting_probes: list[str],
    out_png: str | Path,
    out_pdf: str | Path,
    *,
    arm_order: list[str] | None = None,
    arm_labels: Mapping[str, str] | None = None,
    probe_labels: Mapping[str, str] = PROBE_LABELS,
) -> None:
    """One panel per forgetting probe: task gain (x) vs forgetting-probe change (y) per arm.

    Deltas are taken per seed against base, then shown as mean with ±1 std (ddof=1) error bars;
    base sits at the origin. The quadrant "learned and did not forget" is lightly shaded.
    ``arm_order`` defaults to every non-base arm in ``df``, retrofit first, then first appearance.
    """
    arm_order = _checked_arm_order(df, learning_probe, forgetting_probes, arm_order)
    labels = dict(arm_labels or {})
    colors = arm_colors([REFERENCE_ARM, *arm_order])

    n = len(forgetting_probes)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(PANEL_SIZE[0] * n, PANEL_SIZE[1]), layout="constrained")
        axes = fig.subplots(1, n, squeeze=False)[0]
        for ax, probe in zip(axes, forgetting_probes, strict=True):
            _tradeoff_panel(ax, df, learning_probe, probe, arm_order, labels, colors, probe_labels)
        handles, names = axes[0].get_legend_handles_labels()
        fig.legend(
            handles,
            names,
            loc="outside lower center",
            ncol=min(len(names), 6),
            frameon=False,
        )
        save_figure(fig, out_png, out_pdf)


def _checked_arm_order(
    df: pd.DataFrame,
    learning_probe: str,
    forgetting_probes: list[str],
    arm_order: list[str] | None,
) -> list[str]:
    """The arms to plot (default: every non-base arm of `df`, retrofit first); the probe lists
    and the order checked."""
    check_unique(forgetting_probes, "forgetting_probes")
    if learning_probe in forgetting_probes:
        raise ValueError(f"learning probe {learning_probe!r} is also listed as a forgetting probe")
    if arm_order is None:
        seen = [a for a in dict.fromkeys(df["arm"]) if a != REFERENCE_ARM]
        arm_order = sorted(seen, key=lambda a: a != "retrofit")  # stable: retrofit first
    check_unique(arm_order, "arm_order")
    if REFERENCE_ARM in arm_order:
        raise ValueError(f"arm_order must not contain the reference arm {REFERENCE_ARM!r}")
    return arm_order


def _tradeoff_panel(
    ax,
    df: pd.DataFrame,
    learning_probe: str,
    probe: str,
    arm_order: list[str],
    labels: dict[str, str],
    colors: Mapping[str, object],
    probe_labels: Mapping[str, str],
) -> None:
    """One panel: base at the origin, each arm's mean (+-1 std) gain vs change on `probe`."""
    x_meta = probe_meta(df, learning_probe)
    x_base = _base_value(df, learning_probe)
    y_meta = probe_meta(df, probe)
    y_base = _base_value(df, probe)
    ax.axhline(0.0, color="0.5", lw=0.8, ls="--", zorder=1)
    ax.axvline(0.0, color="0.5", lw=0.8, ls="--", zorder=1)
    ax.plot(0.0, 0.0, BASE_MARKER, ms=12, color=colors[REFERENCE_ARM], zorder=4,
            label=labels.get(REFERENCE_ARM, REFERENCE_ARM))  # fmt: skip
    for i, arm in enumerate(arm_order):
        dx = _seed_deltas(df, arm, learning_probe, x_base)
        dy = _seed_deltas(df, arm, probe, y_base)
        if not dx.index.equals(dy.index):
            raise ValueError(
                f"arm {arm!r}: seeds for {learning_probe!r} {sorted(dx.index)} differ from "
                f"seeds for {probe!r} {sorted(dy.index)}"
            )
        ax.errorbar(
            dx.mean(),
            dy.mean(),
            xerr=np.nan_to_num(dx.std(ddof=1)),  # one seed: no bar
            yerr=np.nan_to_num(dy.std(ddof=1)),
            fmt=MARKERS[i % len(MARKERS)], ms=7, color=colors[arm], mec="white", mew=0.6,
            ecolor=colors[arm], elinewidth=1.2, capsize=3, label=labels.get(arm, arm), zorder=3,
        )  # fmt: skip
    ax.margins(0.15)
    _shade_better_quadrant(ax, y_meta["higher_is_better"])
    ax.set_xlabel(_axis_label(learning_probe, x_meta, probe_labels))
    ax.set_ylabel(_axis_label(probe, y_meta, probe_labels))
    ax.set_title(
        f"{probe_labels.get(learning_probe, learning_probe)} gain vs "
        f"{probe_labels.get(probe, probe)} change"
    )


def save_figure(fig: Figure, out_png: str | Path, out_pdf: str | Path) -> None:
    for out in (out_png, out_pdf):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=PNG_DPI)
    fig.savefig(out_pdf)


# ---------------------------------------------------------------------------------------------
# Training logs and loss curves
# ---------------------------------------------------------------------------------------------


def _read_train_log(path: Path) -> list[dict]:
    """Validated records of one train_log.jsonl; errors name the file, line and field."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as err:
        raise ValueError(f"{path}: training log not found") from err
    records = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{lineno}: not valid JSON ({err})") from err
        if not isinstance(rec, dict):
            raise ValueError(f"{path}:{lineno}: expected a JSON object")
        for key in LOG_KEYS:
            if key not in rec:
                raise ValueError(f"{path}:{lineno}: missing key {key!r}")
            if not is_number(rec[key]):
                raise ValueError(f"{path}:{lineno}: key {key!r} must be a number, got {rec[key]!r}")
        for key in ("step", "rows_updated"):
            if not isinstance(rec[key], int) or rec[key] < 0:
                raise ValueError(f"{path}:{lineno}: key {key!r} must be a non-negative int")
        if records and rec["step"] <= records[-1]["step"]:
            raise ValueError(
                f"{path}:{lineno}: step {rec['step']} does not increase "
                f"(previous {records[-1]['step']}); was a resumed run appended?"
            )
        records.append({key: rec[key] for key in LOG_KEYS})
    if not records:
        raise ValueError(f"{path}: training log is empty")
    return records


def load_train_logs(paths: dict[str, list[Path]]) -> pd.DataFrame:
    """Long table (arm, seed, step, loss, lr, rows_updated) from one log per (arm, seed).

    The seed is parsed from a parent folder named ``seed{n}``, else it is the file's list index.
    """
    if not paths:
        raise ValueError("load_train_logs: no arms given")
    frames = []
    for arm, arm_paths in paths.items():
        if not arm_paths:
            raise ValueError(f"load_train_logs: arm {arm!r} has no log files")
        seeds: dict[int, Path] = {}
        for index, path in enumerate(map(Path, arm_paths)):
            match = SEED_DIR.match(path.parent.name)
            seed = int(match.group(1)) if match else index
            if seed in seeds:
                raise ValueError(f"arm {arm!r}: seed {seed} given twice ({seeds[seed]}, {path})")
            seeds[seed] = path
            frame = pd.DataFrame(_read_train_log(path), columns=list(LOG_KEYS))
            frame.insert(0, "seed", seed)
            frame.insert(0, "arm", arm)
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def plot_loss_curves(
    logs_df: pd.DataFrame,
    out_png: str | Path,
    out_pdf: str | Path,
    *,
    smooth_window: int | None = None,
    log_y: bool | None = None,
    arm_labels: Mapping[str, str] | None = None,
) -> None:
    """Training loss vs step, one line per arm (mean over seeds) with a min–max band over seeds.

    Smoothing: each seed's loss is a trailing moving average over ``smooth_window`` logged steps
    before seeds are combined; ``None`` picks ``n_steps // SMOOTH_DIVISOR`` (about 1% of the run,
    at least 1 = raw). The window is stated in the y label. ``log_y=None`` switches to a log
    y-axis when the plotted loss spans more than ``LOG_Y_RATIO``.
    """
    missing = [c for c in ("arm", "seed", "step", "loss") if c not in logs_df.columns]
    if missing:
        raise ValueError(f"logs_df lacks columns {missing}")
    if logs_df.empty:
        raise ValueError("logs_df is empty")
    if smooth_window is not None and smooth_window < 1:
        raise ValueError(f"smooth_window must be >= 1, got {smooth_window}")
    longest_run = logs_df.groupby(["arm", "seed"]).size().max()
    window = smooth_window or max(1, longest_run // SMOOTH_DIVISOR)
    arms = list(dict.fromkeys(logs_df["arm"]))
    colors = arm_colors(arms)
    labels = dict(arm_labels or {})

    curves = {}
    for arm in arms:
        rows = logs_df[logs_df["arm"] == arm].sort_values(["seed", "step"])
        smoothed = rows.groupby("seed")["loss"].transform(
            lambda s: s.rolling(window, min_periods=1).mean()
        )
        curves[arm] = smoothed.groupby(rows["step"]).agg(["mean", "min", "max", "size"])

    lowest = min(c["min"].min() for c in curves.values())
    highest = max(c["max"].max() for c in curves.values())
    if log_y is None:
        log_y = lowest > 0 and highest / lowest > LOG_Y_RATIO

    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=LOSS_FIG_SIZE, layout="constrained")
        ax = fig.subplots()
        for arm, curve in curves.items():
            n_seeds = logs_df.loc[logs_df["arm"] == arm, "seed"].nunique()
            seeds_note = f"{n_seeds} seed{'s' if n_seeds > 1 else ''}"
            ax.plot(
                curve.index,
                curve["mean"],
                color=colors[arm],
                lw=1.4,
                label=f"{labels.get(arm, arm)} ({seeds_note})",
            )
            if n_seeds > 1:
                ax.fill_between(
                    curve.index,
                    curve["min"],
                    curve["max"],
                    color=colors[arm],
                    alpha=BAND_ALPHA,
                    lw=0,
                )
        if log_y:
            ax.set_yscale("log")
        ax.set_xlabel("Optimizer step")
        smooth_note = f" (moving avg. over {window} steps)" if window > 1 else ""
        ax.set_ylabel(f"Training loss{smooth_note}")
        ax.set_title("Training loss (mean over seeds, band = min–max)")
        ax.legend(frameon=False)
        save_figure(fig, out_png, out_pdf)
