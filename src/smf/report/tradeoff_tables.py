"""The trade-off report's files: matched_learning.md (every run, forgetting on a grid of levels,
paired differences between arms) and its three CSVs.

The words follow the numbers: a gain or difference is given with its interval and whether that
interval excludes zero, never as "measured" or "within noise"; a level an arm does not bracket
is "–" with the reason; what each interval resamples (seeds and questions, or perplexity's
windows or pages; questions or units only with one seed; seeds only for perplexity from caches
without per-unit losses) is stated, and so is the probe's chance baseline.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from smf.report import paper_tables
from smf.report.comparisons import Comparison, resampled_over

DASH = "–"


def _label(probe: str) -> str:
    return paper_tables.PROBE_LABELS.get(probe, probe)


def _ci(value: float, low: float, high: float, share: float | None = None) -> str:
    """'+1.23 [+0.10, +2.40]'; without an interval the share of resamples that had a value."""
    if np.isnan(low):
        why = (
            "no interval"
            if share is None or np.isnan(share)
            else f"no interval: bracketed in {share:.0%} of resamples"
        )
        return f"{value:+.2f} ({why})"
    return f"{value:+.2f} [{low:+.2f}, {high:+.2f}]"


def _yes(row: pd.Series | Mapping, prefix: str = "") -> str:
    if np.isnan(row[f"{prefix}low"]):
        return DASH
    return "yes" if row[f"{prefix}excludes_zero"] else "no"


def _header(cmp: Comparison, chance: Mapping[str, float | None]) -> list[str]:
    pct = int(round(cmp.settings.confidence * 100))
    lines = [f"# Learning ({_learning_label(cmp)}) vs forgetting", ""]
    lines.append(
        f"{cmp.seeds_note()} Intervals: {pct} % percentile bootstrap "
        f"({cmp.settings.n_resamples} resamples) that draws seeds and questions together and "
        "shares each draw across runs, arms and the base model (paired)."
    )
    units = " and ".join(["questions", *dict.fromkeys(cmp.units.values())])
    if cmp.n_seeds() == 1:
        lines.append(
            f"**One seed: the intervals are over {units} only; seed-to-seed variance is not in "
            "them.**"
        )
    elif any(len(seeds) == 1 for seeds in cmp.seeds.values()):
        lines.append(
            f"**Runs with one seed: their intervals are over {units} only; seed-to-seed "
            "variance is not in them.**"
        )
    for probe in [cmp.learning_probe, *cmp.forgetting_probes]:
        lines.append(f"- {_label(probe)}: resampled over {_over(cmp, probe)}.")
    for probe, value in chance.items():
        if value is not None:
            lines.append(
                f"- Chance on {_label(probe)} (naming one of a question form's answers at "
                f"random, smf/report/chance.py): {value * 100:.1f} % of the questions."
            )
    return [*lines, ""]


def _learning_label(cmp: Comparison) -> str:
    label = _label(cmp.learning_probe)
    return label if cmp.learning_unit == "points" else f"{label}, gold log-prob per token"


def _over(cmp: Comparison, probe: str) -> str:
    return resampled_over(cmp.per_question[probe], cmp.n_seeds(), cmp.units.get(probe))


def runs_markdown(cmp: Comparison, runs: pd.DataFrame) -> list[str]:
    """Every run: gain and forgetting vs base with intervals."""
    pct = int(round(cmp.settings.confidence * 100))
    head = ["run", "lr", f"{_learning_label(cmp)} gain [{pct} % CI]", "excludes 0"]
    head += [f"{_label(p)} forgetting [{pct} % CI]" for p in cmp.forgetting_probes]
    lines = ["## Every run (change vs base, mean over seeds)", "", _row(head)]
    lines.append("|---" * len(head) + "|")
    for run, row in runs.iterrows():
        cells = [run, f"{row['lr']:g}",
                 _ci(row["learning"], row["learning_low"], row["learning_high"]),
                 _yes(row, "learning_")]  # fmt: skip
        for p in cmp.forgetting_probes:
            f = f"{p}_forgetting"
            cells.append(_ci(row[f], row[f"{f}_low"], row[f"{f}_high"]))
        lines.append(_row(cells))
    lines += ["", "Forgetting is positive when worse than base (accuracy drop in points, "
              "perplexity increase)."]  # fmt: skip
    return lines


def churn_markdown(cmp: Comparison) -> list[str]:
    """Answers lost and gained vs base per run and seed, with the exact McNemar p."""
    all_seeds = sorted({s for seeds in cmp.seeds.values() for s in seeds})
    lines = []
    for probe, runs in cmp.churn.items():
        gold = (
            "are in this report's gold_logprob table (change vs base per run, with intervals)."
            if probe in cmp.gold
            else "are not in the eval JSONs (qa answers keep the output and its verdict only), "
            "so none is reported."
        )
        lines += ["", f"### {_label(probe)}: answers lost and gained vs base", "",
                  "Per seed: lost (base right, run wrong) / gained (base wrong, run right), "
                  "exact McNemar p (two-sided). Gold-answer log-probabilities, a continuous "
                  f"measure on the retained set, {gold}", "",
                  _row(["run", *(f"seed {s}" for s in all_seeds)]),
                  "|---" * (len(all_seeds) + 1) + "|"]  # fmt: skip
        for family in cmp.families:
            for run in cmp.ordered(family):
                by_seed = dict(zip(cmp.seeds[run], runs[run], strict=True))
                cells = [
                    f"{c['lost']} / {c['gained']}, p {c['p']:.2g}" if c else DASH
                    for c in (by_seed.get(s) for s in all_seeds)
                ]
                lines.append(_row([run, *cells]))
    return lines


def levels_markdown(cmp: Comparison, levels: pd.DataFrame) -> list[str]:
    """Forgetting at each level of the grid, per arm and probe."""
    origin = (
        "with the base model as an extra point at (0, 0): values between it and a run are "
        "read on the origin line (labelled 'base (origin line)')"
        if cmp.settings.anchor_origin
        else "never from the base model (the origin line is off)"
    )
    lines = ["## Forgetting at learning levels", "",
             f"Levels every {cmp.level_step:g} {cmp.learning_unit} of gain up to the largest any "
             "run reached. Each arm's forgetting is interpolated between two of its runs, adjacent "
             f"in learning rate, whose gains bracket the level, {origin}; {DASH} otherwise, "
             "with the reason. The interval reads the level in every resample."]  # fmt: skip
    if levels.empty:
        return [*lines, "", "No run gains a full level step: no level to report."]
    for probe, rows in levels.groupby("probe", sort=False):
        lines += ["", f"### {_label(probe)}", "", _row(["level", *cmp.families]),
                  "|---" * (len(cmp.families) + 1) + "|"]  # fmt: skip
        for level, at in rows.groupby("level", sort=True):
            cells = [f"{level:+g}"]
            for _, r in at.iterrows():
                if np.isnan(r["forgetting"]):
                    cells.append(f"{DASH} ({r['reason']})")
                else:
                    cells.append(f"{_ci(r['forgetting'], r['low'], r['high'], r['share'])} "
                                 f"({r['between']})")  # fmt: skip
            lines.append(_row(cells))
    return lines


def differences_markdown(cmp: Comparison, diffs: pd.DataFrame) -> list[str]:
    """Paired differences in forgetting between arms at each level."""
    pct = int(round(cmp.settings.confidence * 100))
    lines = ["## Differences between arms at each level", "",
             "a − b in forgetting (negative: a forgets less), bootstrapped through the "
             "interpolation with the same resampled seeds and questions for both arms. Only "
             "pairs where both arms bracket the level."]  # fmt: skip
    if diffs.empty:
        return [*lines, "", "No level that two arms both bracket."]
    lines += ["", _row(["probe", "level", "a − b", f"difference [{pct} % CI]", "excludes 0"]),
              "|---" * 5 + "|"]  # fmt: skip
    for _, d in diffs.iterrows():
        lines.append(_row([_label(d["probe"]), f"{d['level']:+g}", f"{d['arm_a']} − {d['arm_b']}",
                           _ci(d["value"], d["low"], d["high"], d["share"]), _yes(d)]))  # fmt: skip
    return lines


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def write_tradeoff_tables(
    cmp: Comparison,
    runs: pd.DataFrame,
    levels: pd.DataFrame,
    diffs: pd.DataFrame,
    out: Mapping[str, str | Path],
    chance: Mapping[str, float | None],
) -> None:
    """matched_learning.{md,csv} (levels), learning_gains.csv (runs), matched_differences.csv."""
    levels.to_csv(out["csv"], index=False, float_format="%.6g")
    if "runs_csv" in out:  # the gold-matched tables keep their runs in gold_logprob.csv
        runs.to_csv(out["runs_csv"], float_format="%.6g")
    if "differences_csv" in out:  # absent only in a DAG parsed before this output existed
        diffs.to_csv(out["differences_csv"], index=False, float_format="%.6g")
    lines = _header(cmp, chance)
    lines += runs_markdown(cmp, runs) + churn_markdown(cmp) + [""]
    lines += levels_markdown(cmp, levels) + [""]
    lines += differences_markdown(cmp, diffs)
    Path(out["md"]).write_text("\n".join(lines) + "\n", encoding="utf-8")
