"""Tables for the paper, built from cached eval JSONs; the eval schema they are checked against.

Everything here reads files the pipeline already wrote
(results/{experiment}/eval/{model}/{probe}.json) and only formats them, so the report stage can
be rerun cheaply. The figures drawn from the same
results live in smf.report.figures.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

__all__ = [
    "load_eval_results",
    "main_table",
    "write_tables",
]

# ---------------------------------------------------------------------------------------------
# Constants: schema, display formats
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

PROBE_LABELS = {
    "medmcqa": "MedMCQA",
    "wikitext": "WikiText",
    "triviaqa": "TriviaQA",
    "triviaqa_retention": "TriviaQA retention",  # smf.report.retention
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


# ---------------------------------------------------------------------------------------------
# Loading and validating eval results
# ---------------------------------------------------------------------------------------------


def is_number(x: object) -> bool:
    """A JSON number: int or float, never bool."""
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
    if not is_number(value) or not math.isfinite(value):
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
            raise ValueError(
                f"{path}: not valid JSON ({err}); the file is truncated or corrupt. Rebuild it: "
                f"`rm {path}` and run the same snakemake command again (its evaluation reruns)."
            ) from err
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


def probe_meta(df: pd.DataFrame, probe: str) -> dict:
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


def check_unique(names: list[str], what: str) -> None:
    """Raise unless ``names`` is non-empty and without repeats; ``what`` names it in the error."""
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
    check_unique(arms, "row_order")
    check_unique(probe_order, "probe_order")

    sel = df[df["arm"].isin(arms) & df["probe"].isin(probe_order)]
    groups = sel.groupby(["arm", "probe"])["value"]
    stats = pd.DataFrame({"mean": groups.mean(), "std": groups.std(ddof=1), "n": groups.size()})
    missing = [(a, p) for a in arms for p in probe_order if (a, p) not in stats.index]
    if missing:
        listed = ", ".join(f"(arm={a!r}, probe={p!r})" for a, p in missing)
        raise ValueError(f"eval results missing for {listed}")
    meta = {p: probe_meta(sel, p) for p in probe_order}

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
