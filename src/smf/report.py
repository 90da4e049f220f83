"""Tables and figures for the paper, built from cached eval JSONs and training logs.

Everything here reads files the pipeline already wrote (results/eval/{model}/{probe}.json and
results/runs/{arm}/seed{seed}/train_log.jsonl) and only formats them, so the report stage can be
rerun cheaply. Figures are drawn on ``matplotlib.figure.Figure`` objects directly (Agg canvas),
never through pyplot, so no GUI backend or global figure state is ever touched.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = [
    "load_eval_results",
    "main_table",
    "write_tables",
    "plot_learning_vs_forgetting",
    "load_train_logs",
    "plot_loss_curves",
]

# ---------------------------------------------------------------------------------------------
# Constants: schema, display formats, figure style
# ---------------------------------------------------------------------------------------------

LEADING_ARMS = ("base", "retrofit")  # rows that always open the main table, in this order
REFERENCE_ARM = "base"  # every delta is measured against this arm

EVAL_KEYS = (
    "model",
    "arm",
    "seed",
    "probe",
    "kind",
    "protocol",
    "metric",
    "value",
    "higher_is_better",
    "n",
)
EVAL_KINDS = ("multiple_choice", "perplexity", "qa")
# metric -> its direction, display scale (accuracy in %), decimals shown and header abbreviation
METRICS = {
    "accuracy": {"higher_is_better": True, "scale": 100.0, "decimals": 1, "short": "acc (%)"},
    "perplexity": {"higher_is_better": False, "scale": 1.0, "decimals": 2, "short": "ppl"},
}
DELTA_UNITS = {"accuracy": "pp; ", "perplexity": ""}  # accuracy deltas are percentage points
LOG_KEYS = ("step", "loss", "lr", "rows_updated")
SEED_DIR = re.compile(r"^seed(\d+)$")

PROBE_LABELS = {
    "medmcqa": "MedMCQA",
    "wikitext": "WikiText",
    "triviaqa": "TriviaQA",
    "triviaqa_retention": "TriviaQA retention",  # smf.retention
    "facts": "Facts",  # paper 1's fact learning: one held-out question per taught fact
    "facts_taught": "Facts, taught form",  # the same facts asked in a trained wording (recall)
    "nq": "NaturalQuestions",
}

MD_SYMBOLS = {"pm": "±", "delta": "Δ", "missing": "–", "up": "↑", "down": "↓"}
TEX_SYMBOLS = {
    "pm": r"$\pm$",
    "delta": r"$\Delta$",
    "missing": "--",
    "up": r"$\uparrow$",
    "down": r"$\downarrow$",
}
TEX_SPECIALS = {c: "\\" + c for c in "&%$#_{}"} | {
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
}

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
# Loading and validating eval results
# ---------------------------------------------------------------------------------------------


def _is_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _check_eval_record(record: object, path: Path) -> dict:
    """Validate one eval JSON against the shared schema; the error names the file and field."""
    if not isinstance(record, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(record).__name__}")
    for key in EVAL_KEYS:
        if key not in record:
            raise ValueError(f"{path}: missing key {key!r}")
    for key in ("model", "arm", "probe", "protocol"):
        if not isinstance(record[key], str) or not record[key]:
            raise ValueError(f"{path}: key {key!r} must be a non-empty string, got {record[key]!r}")
    seed = record["seed"]
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise ValueError(f"{path}: key 'seed' must be an int or null, got {seed!r}")
    if record["kind"] not in EVAL_KINDS:
        raise ValueError(f"{path}: key 'kind' must be one of {EVAL_KINDS}, got {record['kind']!r}")
    metric = record["metric"]
    if metric not in METRICS:
        raise ValueError(f"{path}: key 'metric' must be one of {tuple(METRICS)}, got {metric!r}")
    value = record["value"]
    if not _is_number(value) or not math.isfinite(value):
        raise ValueError(f"{path}: key 'value' must be a finite number, got {value!r}")
    if metric == "accuracy" and not 0.0 <= value <= 1.0:
        raise ValueError(f"{path}: key 'value' is an accuracy and must lie in [0, 1], got {value}")
    if metric == "perplexity" and value < 1.0:
        raise ValueError(f"{path}: key 'value' is a perplexity and must be >= 1, got {value}")
    hib = record["higher_is_better"]
    if not isinstance(hib, bool):
        raise ValueError(f"{path}: key 'higher_is_better' must be a bool, got {hib!r}")
    if hib != METRICS[metric]["higher_is_better"]:
        raise ValueError(f"{path}: key 'higher_is_better' is {hib} but metric {metric!r} says not")
    n = record["n"]
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        raise ValueError(f"{path}: key 'n' must be a positive int, got {n!r}")
    return {key: record[key] for key in EVAL_KEYS}


def load_eval_results(paths: Iterable[str | Path]) -> pd.DataFrame:
    """One row per eval JSON (schema columns plus ``path``); extra JSON fields are dropped.

    Two files for the same (arm, seed, probe, protocol) are an error rather than silently averaged.
    """
    rows = []
    for path in map(Path, paths):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise ValueError(f"{path}: eval result file not found") from err
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from err
        rows.append(_check_eval_record(record, path) | {"path": str(path)})
    if not rows:
        raise ValueError("load_eval_results: no eval result files given")

    df = pd.DataFrame(rows, columns=[*EVAL_KEYS, "path"])
    df["seed"] = df["seed"].astype("Int64")
    key = ["arm", "seed", "probe", "protocol"]
    dup = df[df.duplicated(key, keep=False)]
    if not dup.empty:
        first = dup.iloc[0]
        clash = dup[(dup["arm"] == first["arm"]) & (dup["probe"] == first["probe"])]
        raise ValueError(
            f"duplicate eval results for arm={first['arm']!r} seed={first['seed']} "
            f"probe={first['probe']!r} protocol={first['protocol']!r}: {list(clash['path'])}"
        )
    return df


def _probe_meta(df: pd.DataFrame, probe: str) -> dict:
    """The one metric/direction/protocol of a probe; mixing protocols in one table is an error."""
    rows = df[df["probe"] == probe]
    if rows.empty:
        raise ValueError(f"no eval results for probe {probe!r}")
    meta = {}
    for field in ("metric", "higher_is_better", "protocol"):
        values = rows[field].unique()
        if len(values) != 1:
            raise ValueError(
                f"probe {probe!r} mixes {field} values {sorted(map(str, values))}; "
                "filter the results to one protocol first"
            )
        meta[field] = values[0].item() if hasattr(values[0], "item") else values[0]
    return meta


# ---------------------------------------------------------------------------------------------
# Main table
# ---------------------------------------------------------------------------------------------


def _check_unique(names: list[str], what: str) -> None:
    if not names:
        raise ValueError(f"{what} is empty")
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise ValueError(f"{what} has duplicates: {dups}")


def main_table(df: pd.DataFrame, row_order: list[str], probe_order: list[str]) -> pd.DataFrame:
    """Mean, std (ddof=1) and delta vs base per (arm, probe), rows base, retrofit, *row_order.

    Raw units are kept (accuracy as a fraction). Arms in ``df`` but not in the rows are ignored.
    The probes' metric, direction and protocol go into ``table.attrs`` for ``write_tables``.
    """
    overlap = [a for a in row_order if a in LEADING_ARMS]
    if overlap:
        raise ValueError(f"row_order must not repeat the leading arms {LEADING_ARMS}: {overlap}")
    arms = [*LEADING_ARMS, *row_order]
    _check_unique(arms, "row_order")
    _check_unique(probe_order, "probe_order")

    sel = df[df["arm"].isin(arms) & df["probe"].isin(probe_order)]
    groups = sel.groupby(["arm", "probe"])["value"]
    stats = pd.DataFrame({"mean": groups.mean(), "std": groups.std(ddof=1), "n": groups.size()})
    missing = [(a, p) for a in arms for p in probe_order if (a, p) not in stats.index]
    if missing:
        listed = ", ".join(f"(arm={a!r}, probe={p!r})" for a, p in missing)
        raise ValueError(f"eval results missing for {listed}")
    meta = {p: _probe_meta(sel, p) for p in probe_order}

    table = pd.DataFrame(index=pd.Index(arms, name="arm"))
    for probe in probe_order:
        mean = stats["mean"].xs(probe, level="probe").reindex(arms)
        table[probe] = mean
        table[f"{probe}_std"] = stats["std"].xs(probe, level="probe").reindex(arms)
        table[f"{probe}_delta"] = mean - mean[REFERENCE_ARM]

    counts = stats["n"].unstack("probe").reindex(index=arms, columns=probe_order)
    uneven = counts[counts.nunique(axis=1) > 1]
    if not uneven.empty:
        arm = uneven.index[0]
        raise ValueError(
            f"arm {arm!r} has a different number of seeds per probe: {uneven.loc[arm].to_dict()}"
        )
    table["n_seeds"] = counts[probe_order[0]].astype(int)
    fields = meta[probe_order[0]]
    table.attrs = {field: {p: meta[p][field] for p in probe_order} for field in fields}
    return table


# ---------------------------------------------------------------------------------------------
# Writing the table as CSV / Markdown / LaTeX
# ---------------------------------------------------------------------------------------------


def _signed(x: float, decimals: int) -> str:
    """``+1.2`` / ``-1.2``, never ``-0.0``."""
    x = round(x, decimals)
    return f"{0.0 if x == 0 else x:+.{decimals}f}"


def _cell(mean: float, std: float, delta: float, metric: str, sym: dict, show_delta: bool) -> str:
    """'mean ± std (Δ +x)' in display units; a NaN std (one seed) shows the 'missing' symbol."""
    fmt = METRICS[metric]
    scale, d = fmt["scale"], fmt["decimals"]
    std_text = sym["missing"] if math.isnan(std) else f"{std * scale:.{d}f}"
    text = f"{mean * scale:.{d}f} {sym['pm']} {std_text}"
    if show_delta:
        signed = _signed(delta * scale, d)
        if sym is TEX_SYMBOLS:
            signed = f"${signed}$"  # a real minus sign, not a hyphen
        text += f" ({sym['delta']} {signed})"
    return text


def _latex_escape(text: str) -> str:
    return "".join(TEX_SPECIALS.get(c, c) for c in text)


def _table_probes(table: pd.DataFrame) -> list[str]:
    """Probe names in column order: columns that come with a ``_std`` and ``_delta`` partner."""
    cols = set(table.columns)
    return [c for c in table.columns if f"{c}_std" in cols and f"{c}_delta" in cols]


def _display_table(
    table: pd.DataFrame,
    probes: list[str],
    metrics: Mapping[str, str],
    higher: Mapping[str, bool],
    sym: dict,
    latex: bool,
    arm_labels: Mapping[str, str],
    probe_labels: Mapping[str, str],
) -> pd.DataFrame:
    def esc(s: str) -> str:
        return _latex_escape(s) if latex else s

    out = {"Arm": [esc(arm_labels.get(a, a)) for a in table.index]}
    for probe in probes:
        metric = metrics[probe]
        short = METRICS[metric]["short"]
        arrow = sym["up"] if higher[probe] else sym["down"]
        header = f"{esc(probe_labels.get(probe, probe))} {esc(short)} {arrow}"
        out[header] = [
            _cell(
                row[probe],
                row[f"{probe}_std"],
                row[f"{probe}_delta"],
                metric,
                sym,
                show_delta=arm != REFERENCE_ARM,
            )
            for arm, row in table.iterrows()
        ]
    out["Seeds"] = [str(int(n)) for n in table["n_seeds"]]
    return pd.DataFrame(out)


def write_tables(
    table: pd.DataFrame,
    out_csv: str | Path,
    out_md: str | Path,
    out_tex: str | Path,
    metrics: dict[str, str],
    *,
    arm_labels: Mapping[str, str] | None = None,
    probe_labels: Mapping[str, str] = PROBE_LABELS,
    note: str | None = None,
) -> None:
    """Write ``main_table`` output as raw CSV plus formatted Markdown and booktabs LaTeX.

    ``note`` (e.g. what the ± covers) follows the Markdown table and ends the LaTeX as a comment.

    ``metrics`` maps probe -> metric ("accuracy" | "perplexity"): it picks the number format
    (accuracy in % with 1 decimal, perplexity with 2) and must agree with the eval JSONs. Arrows
    come from the ``higher_is_better`` field that ``main_table`` stores in ``table.attrs``.
    Text cells read "mean ± std (Δ +x)"; the base row is the reference and carries no Δ; a std
    from a single seed is shown as "–". Labels default to arm ids and ``PROBE_LABELS``.
    """
    probes = _table_probes(table)
    if not probes:
        raise ValueError("table has no '{probe}', '{probe}_std', '{probe}_delta' column triples")
    if "n_seeds" not in table.columns:
        raise ValueError("table has no 'n_seeds' column")
    if REFERENCE_ARM not in table.index:
        raise ValueError(f"table has no {REFERENCE_ARM!r} row")
    higher = table.attrs.get("higher_is_better")
    if not isinstance(higher, dict):
        raise ValueError("table.attrs lacks the 'higher_is_better' map; build it with main_table")
    table_metrics = table.attrs.get("metric", {})
    for probe in probes:
        if probe not in metrics:
            raise ValueError(f"metrics has no entry for probe {probe!r}")
        if metrics[probe] not in METRICS:
            raise ValueError(f"metrics[{probe!r}] must be one of {tuple(METRICS)}")
        if probe in table_metrics and table_metrics[probe] != metrics[probe]:
            raise ValueError(
                f"metrics[{probe!r}] = {metrics[probe]!r} but the eval results say "
                f"{table_metrics[probe]!r}"
            )
        if probe not in higher:
            raise ValueError(f"table.attrs['higher_is_better'] has no entry for probe {probe!r}")
    labels = dict(arm_labels or {})

    for out in (out_csv, out_md, out_tex):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_csv)

    md = _display_table(table, probes, metrics, higher, MD_SYMBOLS, False, labels, probe_labels)
    footer = f"\n{note}\n" if note else ""
    Path(out_md).write_text(md.to_markdown(index=False) + "\n" + footer, encoding="utf-8")

    tex = _display_table(table, probes, metrics, higher, TEX_SYMBOLS, True, labels, probe_labels)
    latex = tex.style.hide(axis="index").to_latex(
        hrules=True, column_format="l" + "c" * (tex.shape[1] - 1)
    )
    Path(out_tex).write_text(latex + (f"% {note}\n" if note else ""), encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# Learning vs forgetting figure
# ---------------------------------------------------------------------------------------------


def _arm_colors(arms: list[str]) -> dict[str, str]:
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
    _check_unique(forgetting_probes, "forgetting_probes")
    if learning_probe in forgetting_probes:
        raise ValueError(f"learning probe {learning_probe!r} is also listed as a forgetting probe")
    if arm_order is None:
        seen = [a for a in dict.fromkeys(df["arm"]) if a != REFERENCE_ARM]
        arm_order = sorted(seen, key=lambda a: a != "retrofit")  # stable: retrofit first
    _check_unique(arm_order, "arm_order")
    if REFERENCE_ARM in arm_order:
        raise ValueError(f"arm_order must not contain the reference arm {REFERENCE_ARM!r}")
    labels = dict(arm_labels or {})
    colors = _arm_colors([REFERENCE_ARM, *arm_order])
    x_meta = _probe_meta(df, learning_probe)
    x_base = _base_value(df, learning_probe)

    n = len(forgetting_probes)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(PANEL_SIZE[0] * n, PANEL_SIZE[1]), layout="constrained")
        axes = fig.subplots(1, n, squeeze=False)[0]
        for ax, probe in zip(axes, forgetting_probes, strict=True):
            y_meta = _probe_meta(df, probe)
            y_base = _base_value(df, probe)
            ax.axhline(0.0, color="0.5", lw=0.8, ls="--", zorder=1)
            ax.axvline(0.0, color="0.5", lw=0.8, ls="--", zorder=1)
            ax.plot(
                0.0,
                0.0,
                BASE_MARKER,
                ms=12,
                color=colors[REFERENCE_ARM],
                label=labels.get(REFERENCE_ARM, REFERENCE_ARM),
                zorder=4,
            )
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
                    fmt=MARKERS[i % len(MARKERS)],
                    ms=7,
                    color=colors[arm],
                    mec="white",
                    mew=0.6,
                    ecolor=colors[arm],
                    elinewidth=1.2,
                    capsize=3,
                    label=labels.get(arm, arm),
                    zorder=3,
                )
            ax.margins(0.15)
            _shade_better_quadrant(ax, y_meta["higher_is_better"])
            ax.set_xlabel(_axis_label(learning_probe, x_meta, probe_labels))
            ax.set_ylabel(_axis_label(probe, y_meta, probe_labels))
            ax.set_title(
                f"{probe_labels.get(learning_probe, learning_probe)} gain vs "
                f"{probe_labels.get(probe, probe)} change"
            )
        handles, names = axes[0].get_legend_handles_labels()
        fig.legend(
            handles,
            names,
            loc="outside lower center",
            ncol=min(len(names), 6),
            frameon=False,
        )
        _save(fig, out_png, out_pdf)


def _save(fig: Figure, out_png: str | Path, out_pdf: str | Path) -> None:
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
            if not _is_number(rec[key]):
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
    colors = _arm_colors(arms)
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
        _save(fig, out_png, out_pdf)
