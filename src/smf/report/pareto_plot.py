"""The trade-off figure: every run with its intervals on both axes, each arm's runs joined in
learning-rate order (the path forgetting at a level is read on), and the grid of levels.

The base model is drawn as a star at the origin; an arm's path is joined to it only with the
origin option on (tradeoff.anchor_origin), dashed, so a reader sees which values are read on
the line from the base model and which between real runs.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from smf.report import figures, paper_tables
from smf.report.comparisons import Comparison
from smf.report.fronts import level_grid

PATH_STYLE = {"linewidth": 1.2, "alpha": 0.9}
ORIGIN_STYLE = {"linewidth": 1.0, "alpha": 0.6, "linestyle": ":"}
LEVEL_STYLE = {"color": "#999999", "linestyle": "--", "linewidth": 0.6}


def _errors(points: np.ndarray, lows: np.ndarray, highs: np.ndarray) -> np.ndarray | None:
    """Asymmetric error bars, or None where some interval is missing."""
    err = np.vstack([points - lows, highs - points])
    return None if np.isnan(err).any() else err


def plot_pareto_fronts(cmp: Comparison, runs, out_png: str | Path, out_pdf: str | Path) -> None:
    """One panel per forgetting probe (error bars: the 95 % intervals of `runs`)."""
    colors = figures.arm_colors(list(cmp.families))
    width, height = figures.PANEL_SIZE
    levels = level_grid(list(runs["learning"]), cmp.level_step)
    learn_label = paper_tables.PROBE_LABELS.get(cmp.learning_probe, cmp.learning_probe)
    n = len(cmp.forgetting_probes)
    with matplotlib.rc_context(figures.STYLE):
        fig = Figure(figsize=(width * n, height), layout="constrained")
        axes = fig.subplots(1, n, squeeze=False)[0]
        for ax, probe in zip(axes, cmp.forgetting_probes, strict=True):
            f = f"{probe}_forgetting"
            for i, family in enumerate(cmp.families):
                pts = runs.loc[cmp.ordered(family)]
                color = colors[family]
                x, y = pts["learning"].to_numpy(), pts[f].to_numpy()
                xerr = _errors(x, pts["learning_low"].to_numpy(), pts["learning_high"].to_numpy())
                ax.errorbar(
                    x, y,
                    xerr=xerr,
                    yerr=_errors(y, pts[f"{f}_low"].to_numpy(), pts[f"{f}_high"].to_numpy()),
                    fmt=figures.MARKERS[i % len(figures.MARKERS)], color=color, capsize=2,
                    label=f"{family} ({len(pts)} lr)",
                )  # fmt: skip
                ax.plot(x, y, color=color, **PATH_STYLE)
                if cmp.settings.anchor_origin:
                    ax.plot([0, x[0]], [0, y[0]], color=color, **ORIGIN_STYLE)
            for level in levels:
                ax.axvline(level, **LEVEL_STYLE)
            ax.scatter([0], [0], marker=figures.BASE_MARKER, color="black", zorder=3)
            if cmp.learning_unit == "points":
                ax.set_xlabel(f"{learn_label} gain vs base (↑ learned)")
            else:
                ax.set_xlabel(f"{learn_label} gold log-prob gain, nats/token (↑)")
            ax.set_ylabel(
                f"{paper_tables.PROBE_LABELS.get(probe, probe)} forgetting vs base (↓ kept)"
            )
            ax.set_title(f"{paper_tables.PROBE_LABELS.get(probe, probe)}: runs in lr order")
        axes[0].legend(loc="best")
        figures.save_figure(fig, out_png, out_pdf)


def plot_note(text: str, out_png: str | Path, out_pdf: str | Path) -> None:
    """A figure that only says why there is nothing to draw (a rule's outputs always exist)."""
    with matplotlib.rc_context(figures.STYLE):
        fig = Figure(figsize=figures.PANEL_SIZE, layout="constrained")
        ax = fig.subplots()
        ax.axis("off")
        ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
        figures.save_figure(fig, out_png, out_pdf)
