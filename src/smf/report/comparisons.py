"""The trade-off report's numbers: every run's gain and forgetting with intervals over seeds and
questions, forgetting on a grid of learning levels, and paired differences between arms.

An arm and its learning-rate sweep points (smf.pipeline.sweeps) form a family. Every number is a
change
against the base model in display units (accuracy in points), the mean over seeds. Its interval
comes from one two-level bootstrap (smf.report.bootstrap) shared by all runs, arms and probes of the
report: a resample draws seeds and questions once and every run is scored under that draw, so
gains are paired with the base model and differences between arms are paired with each other
(on seeds only where both runs have the same seeds: runs may differ, two seeds at an arm's own
rate and one at its sweep points).
Probes that keep per-question verdicts (`answers`: MCQ and QA eval JSONs) resample questions;
perplexity resamples its windows (paper3) or pages (lm_eval) with the same shared draws, a ratio
estimator of summed loss over tokens or words (smf.report.units), where every eval JSON keeps
per-unit losses; an older cache keeps one number per model and is resampled over seeds only.
Point values are always the eval JSONs' `value`s, the mean over seeds.

Forgetting at a level is read between two real runs of an arm that bracket it
(smf.report.fronts.bracketed_forgetting), in every resample, so the interval carries the noise of
both axes through the interpolation. A resample in which an arm does not bracket the level has
no value; an interval is only given when at least `confidence` of the resamples have one (else
more than the interval's tails would be missing), and the share is reported.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from smf.report import bootstrap, churn, paper_tables
from smf.report.fronts import (
    bracketed_forgetting,
    forgetting_of,
    level_grid,
    unbracketed_reason,
    with_origin,
)
from smf.report.intervals import CONFIDENCE, N_RESAMPLES, SEED
from smf.report.units import Units, probe_units

DEFAULT_LEVEL_STEP = 10.0  # points of learning gain between reported levels (config: tradeoff)
DEFAULT_GOLD_LEVEL_STEP = 0.5  # nats per token between levels matched on gold log-prob


@dataclass(frozen=True)
class Settings:
    """The `tradeoff:` config block (config/schema.yaml)."""

    level_step: float = DEFAULT_LEVEL_STEP
    gold_level_step: float = DEFAULT_GOLD_LEVEL_STEP
    anchor_origin: bool = False
    n_resamples: int = N_RESAMPLES
    confidence: float = CONFIDENCE
    bootstrap_seed: int = SEED

    @classmethod
    def from_config(cls, cfg: Mapping | None) -> Settings:
        return cls(**dict(cfg or {}))


@dataclass
class ProbeScores:
    """One probe's scores: the base model's and each run's, per seed (and per question)."""

    probe: str
    scale: float
    higher_is_better: bool
    base: np.ndarray  # (n,) per question, or () one value
    runs: dict[str, np.ndarray] = field(default_factory=dict)  # (s, n) or (s,)
    # per-unit losses (perplexity), resampled where `base`/`runs` keep one value per file
    units: Units | None = None
    seeds: dict[str, tuple[int, ...]] = field(default_factory=dict)  # run -> seeds (0 .. s-1)

    @property
    def per_question(self) -> bool:
        return self.base.ndim == 1

    def seeds_of(self, run: str) -> tuple[int, ...]:
        """The seeds of a run's rows in `runs[run]` (by default 0 .. s-1)."""
        return self.seeds.get(run) or tuple(range(len(self.runs[run])))


def _question_scores(path: str) -> dict[str, float] | None:
    """{question id: 1.0 or 0.0} from an eval JSON's per-question `answers` (None without)."""
    answers = json.loads(Path(path).read_text(encoding="utf-8")).get("answers")
    if answers is None:
        return None
    return {str(a["id"]): float(a["correct"]) for a in answers}


def run_seeds(df: pd.DataFrame, runs: Sequence[str], probe: str) -> dict[str, list[int]]:
    """{run: the seeds it was evaluated with on `probe`}. Runs may differ (an arm's own rate
    with two seeds, its sweep points with one); every other probe must have the same seeds
    per run (probe_scores says which file is missing)."""
    rows = df[df["probe"] == probe]
    per_run = {run: sorted(rows[rows["arm"] == run]["seed"].dropna().astype(int)) for run in runs}
    for run, seeds in per_run.items():
        if not seeds:
            raise ValueError(f"eval results missing for arm {run!r}, probe {probe!r}")
    return per_run


def probe_scores(
    df: pd.DataFrame, probe: str, runs: Sequence[str], seeds: Mapping[str, Sequence[int]]
):
    """A probe's ProbeScores; per question when every file keeps `answers`."""
    meta = paper_tables.probe_meta(df, probe)
    rows = df[df["probe"] == probe]
    base_rows = rows[rows["arm"] == paper_tables.REFERENCE_ARM]
    if base_rows.empty:
        raise ValueError(
            f"eval results missing for arm {paper_tables.REFERENCE_ARM!r}, probe {probe!r}"
        )
    paths = {run: [seed_path(rows, run, probe, s) for s in seeds[run]] for run in runs}
    base_q = [_question_scores(p) for p in base_rows["path"]]
    run_q = {run: [_question_scores(p) for p in ps] for run, ps in paths.items()}
    out = ProbeScores(
        probe, paper_tables.METRICS[meta["metric"]]["scale"], bool(meta["higher_is_better"]), None,
        seeds={run: tuple(seeds[run]) for run in runs},
    )  # fmt: skip
    if all(q is not None for q in base_q) and all(
        q is not None for qs in run_q.values() for q in qs
    ):
        return per_question(out, base_q, run_q)
    out.base = np.asarray(base_rows["value"].mean(), dtype=np.float64)
    for run in runs:
        values = [float(rows[rows["path"] == p]["value"].iloc[0]) for p in paths[run]]
        out.runs[run] = np.asarray(values, dtype=np.float64)
    try:
        out.units = probe_units(list(base_rows["path"]), paths)
    except ValueError as err:
        raise ValueError(f"probe {probe!r}: {err}") from None
    return out


def per_question(out: ProbeScores, base: list[dict], runs: Mapping[str, list[dict]], what=""):
    """`out` with the base model's mean over its files and each run's (seeds, questions) matrix
    of {question id: score} dicts, questions in the base model's first file's order."""
    ids = list(base[0])
    out.base = bootstrap.seed_matrix(base, ids).mean(axis=0)
    for run, per_seed in runs.items():
        try:
            out.runs[run] = bootstrap.seed_matrix(per_seed, ids)
        except ValueError as err:
            raise ValueError(f"{run} on {out.probe!r}{what}: {err}") from None
    return out


def seed_path(rows: pd.DataFrame, run: str, probe: str, seed: int) -> str:
    hit = rows[(rows["arm"] == run) & (rows["seed"] == seed)]
    if hit.empty:
        raise ValueError(f"eval results missing for arm {run!r}, seed {seed}, probe {probe!r}")
    return str(hit["path"].iloc[0])


def effects(scores: ProbeScores, draws: bootstrap.Draws, learning: bool):
    """{run: (point, replicates (B,))}: gain (learning) or forgetting vs base, display units.
    Points are means of the cached values; with per-unit losses the replicates are ratios."""
    u = scores.units
    qw = draws.questions.get(scores.probe) if scores.per_question or u is not None else None
    if u is not None:
        base_rep = bootstrap.base_ratios(u.base_nll, u.base_count, qw)
    else:
        base_rep = bootstrap.base_scores(scores.base, qw, draws.n_resamples)
    base_point = float(np.mean(scores.base))
    sign = 1.0 if learning else forgetting_of(1.0, scores.higher_is_better)
    out = {}
    for run, arr in scores.runs.items():
        point = sign * (float(arr.mean()) - base_point) * scores.scale
        seed_weights = draws.seed_weights(scores.seeds_of(run))
        if u is not None:
            run_rep = bootstrap.run_ratios(u.nll[run], u.count[run], seed_weights, qw)
        else:
            run_rep = bootstrap.run_scores(arr, seed_weights, qw)
        out[run] = (point, sign * (run_rep - base_rep) * scores.scale)
    return out


def resampled_over(per_question: bool, n_seeds: int, unit: str | None = None) -> str:
    """What an interval resamples, in the tables' words; `unit`: perplexity's ("windows" or
    "pages") where every eval JSON keeps per-unit losses."""
    if per_question or unit:
        what = unit or "questions"
        return f"seeds and {what}" if n_seeds > 1 else f"{what} (1 seed)"
    # older perplexity JSONs keep no per-page or per-window losses to resample
    return (
        "seeds only (no per-page losses cached)"
        if n_seeds > 1
        else "nothing (1 seed, no per-question scores)"
    )


@dataclass
class Comparison:
    """Everything the tables and the figure read: per probe, each run's (point, replicates)."""

    families: dict[str, list[str]]
    lrs: dict[str, float]
    learning_probe: str
    forgetting_probes: list[str]
    seeds: dict[str, list[int]]  # run -> its seeds
    settings: Settings
    learning: dict[str, tuple[float, np.ndarray]]
    forgetting: dict[str, dict[str, tuple[float, np.ndarray]]]
    per_question: dict[str, bool]
    churn: dict[str, dict[str, list[dict]]] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)  # probe -> "windows" or "pages"
    draws: bootstrap.Draws | None = None  # the shared draws (smf.report.gold reuses them)
    gold: dict[str, dict] = field(default_factory=dict)  # probe -> smf.report.gold's changes
    # what `learning` measures: accuracy in points, or (smf.report.gold) nats per token
    learning_unit: str = "points"

    @property
    def level_step(self) -> float:
        """Learning between reported levels, in `learning_unit`."""
        points = self.learning_unit == "points"
        return self.settings.level_step if points else self.settings.gold_level_step

    def ordered(self, family: str) -> list[str]:
        """A family's runs in learning-rate order (the path interpolation follows)."""
        return sorted(self.families[family], key=lambda run: self.lrs[run])

    def n_seeds(self, runs: Sequence[str] | None = None) -> int:
        """The most seeds of these runs (all of them)."""
        return max(len(self.seeds[run]) for run in (self.seeds if runs is None else runs))

    def seeds_note(self) -> str:
        """The tables' line on seeds: one list, or each list and the runs that have it."""
        groups: dict[tuple[int, ...], list[str]] = {}
        for run, seeds in self.seeds.items():
            groups.setdefault(tuple(seeds), []).append(run)
        if len(groups) == 1:
            (seeds,) = groups
            return f"Seeds: {', '.join(map(str, seeds))} ({len(seeds)})."
        parts = [
            f"{', '.join(map(str, seeds))} ({', '.join(runs)})"
            for seeds, runs in sorted(groups.items(), key=lambda g: (-len(g[0]), g[0]))
        ]
        return (
            f"Seeds per run: {'; '.join(parts)}. Runs with the same seeds share a seed draw; "
            "runs with different seeds are paired on questions only."
        )


def compare(
    df: pd.DataFrame,
    families: Mapping[str, Sequence[str]],
    lrs: Mapping[str, float],
    learning_probe: str,
    forgetting_probes: Sequence[str],
    settings: Settings,
) -> Comparison:
    """Score every run under one shared set of seed and question draws."""
    runs = [run for family in families.values() for run in family]
    missing = [run for run in runs if run not in lrs]
    if missing:
        raise ValueError(f"no learning rate given for run(s) {missing}")
    seeds = run_seeds(df, runs, learning_probe)
    probes = [learning_probe, *forgetting_probes]
    scores = {p: probe_scores(df, p, runs, seeds) for p in dict.fromkeys(probes)}
    counts = {p: int(s.base.size) for p, s in scores.items() if s.per_question}
    unit_counts = {p: s.units.n for p, s in scores.items() if s.units is not None}
    draws = bootstrap.make_draws(
        list(seeds.values()), counts, n_resamples=settings.n_resamples,
        seed=settings.bootstrap_seed, unit_counts=unit_counts,
    )  # fmt: skip
    return Comparison(
        families={f: list(r) for f, r in families.items()},
        lrs=dict(lrs),
        learning_probe=learning_probe,
        forgetting_probes=list(forgetting_probes),
        seeds=seeds,
        settings=settings,
        learning=effects(scores[learning_probe], draws, learning=True),
        forgetting={p: effects(scores[p], draws, learning=False) for p in forgetting_probes},
        per_question={p: s.per_question for p, s in scores.items()},
        churn={p: churn_of(scores[p]) for p in forgetting_probes if scores[p].per_question},
        units={p: s.units.name for p, s in scores.items() if s.units is not None},
        draws=draws,
    )


def churn_of(scores: ProbeScores) -> dict[str, list[dict]]:
    """{run: per seed, answers lost and gained vs base with the exact McNemar p}."""
    base = dict(enumerate(scores.base))
    return {
        run: [churn.lost_gained(base, dict(enumerate(seed))) for seed in arr]
        for run, arr in scores.runs.items()
    }


def _interval(cmp: Comparison, point: float, rep: np.ndarray, probe: str, n_seeds: int) -> dict:
    """Point, interval, share of resamples with a value; no interval where nothing of the
    probe is resampled (one seed of a probe without per-question scores or per-unit losses)."""
    if not (cmp.per_question[probe] or probe in cmp.units or n_seeds > 1):
        nan = float("nan")
        return {"value": point, "low": nan, "high": nan, "share": nan, "excludes_zero": False}
    low, high, share = bootstrap.percentile_interval(rep, cmp.settings.confidence)
    if share < cmp.settings.confidence:
        low = high = float("nan")
    shown = not np.isnan(low)
    return {"value": point, "low": low, "high": high, "share": share,
            "excludes_zero": bootstrap.excludes_zero(low, high) if shown else False}  # fmt: skip


def runs_table(cmp: Comparison) -> pd.DataFrame:
    """One row per run: its family, rate, seeds, learning gain and every forgetting, each with
    its interval and whether the interval excludes zero."""
    rows = []
    for family in cmp.families:
        for run in cmp.ordered(family):
            n = len(cmp.seeds[run])
            row = {"run": run, "arm": family, "lr": cmp.lrs[run], "seeds": n}
            for key, val in _interval(cmp, *cmp.learning[run], cmp.learning_probe, n).items():
                row[f"learning_{key}" if key != "value" else "learning"] = val
            for probe in cmp.forgetting_probes:
                for key, val in _interval(cmp, *cmp.forgetting[probe][run], probe, n).items():
                    row[f"{probe}_forgetting" + ("" if key == "value" else f"_{key}")] = val
            rows.append(row)
    return pd.DataFrame(rows).set_index("run")


def _arrays(cmp: Comparison, family: str, probe: str) -> tuple[np.ndarray, ...]:
    """(points (2, runs), replicates (2, runs, B)) of learning and forgetting, rate-ordered."""
    runs = cmp.ordered(family)
    points = np.array([[cmp.learning[r][0] for r in runs],
                       [cmp.forgetting[probe][r][0] for r in runs]])  # fmt: skip
    reps = np.array([[cmp.learning[r][1] for r in runs],
                     [cmp.forgetting[probe][r][1] for r in runs]])  # fmt: skip
    if cmp.settings.anchor_origin:
        points = np.stack(with_origin(points[0], points[1]))
        reps = np.stack(with_origin(reps[0], reps[1]))
    return points, reps


def at_levels(cmp: Comparison) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(levels, differences): per probe, level and arm the forgetting read between bracketing
    runs with its interval (or a reason); per pair of arms its paired difference."""
    levels = level_grid([p for p, _ in cmp.learning.values()], cmp.level_step)
    rows, diffs = [], []
    for probe in cmp.forgetting_probes:
        arrays = {f: _arrays(cmp, f, probe) for f in cmp.families}
        for level in levels:
            reps = {}
            for family, (points, rep) in arrays.items():
                point, pair = bracketed_forgetting(points[0], points[1], level)
                reps[family] = bracketed_forgetting(rep[0], rep[1], level)[0]
                rows.append(_level_row(cmp, probe, level, family, float(point), int(pair), rep))
                if np.isnan(point):
                    rows[-1]["reason"] = unbracketed_reason(list(points[0]), level)
                    rows[-1]["low"] = rows[-1]["high"] = float("nan")
                else:
                    n = cmp.n_seeds(cmp.families[family])
                    rows[-1].update(_interval(cmp, float(point), reps[family], probe, n))
            points_at = {r["arm"]: r["forgetting"] for r in rows[-len(arrays) :]}
            for a, b in combinations(cmp.families, 2):
                if np.isnan(points_at[a]) or np.isnan(points_at[b]):
                    continue
                n = cmp.n_seeds([*cmp.families[a], *cmp.families[b]])
                d = _interval(cmp, points_at[a] - points_at[b], reps[a] - reps[b], probe, n)
                diffs.append({"probe": probe, "level": level, "arm_a": a, "arm_b": b} | d)
    level_cols = ["probe", "level", "arm", "forgetting", "low", "high", "share", "between"]
    levels_df = pd.DataFrame(rows, columns=[*level_cols, "excludes_zero", "reason", "value"])
    levels_df = levels_df.drop(columns="value")
    diff_cols = ["probe", "level", "arm_a", "arm_b", "value", "low", "high", "share"]
    return levels_df, pd.DataFrame(diffs, columns=[*diff_cols, "excludes_zero"])


def _level_row(cmp: Comparison, probe, level, family, point, pair, rep) -> dict:
    runs = (["base (origin line)"] if cmp.settings.anchor_origin else []) + cmp.ordered(family)
    between = f"{runs[pair]} – {runs[pair + 1]}" if pair >= 0 and len(runs) > 1 else ""
    if pair >= 0 and len(runs) == 1:
        between = runs[0]
    return {"probe": probe, "level": level, "arm": family, "forgetting": point,
            "between": between, "reason": ""}  # fmt: skip
