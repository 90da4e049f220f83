"""The continuous measure beside accuracy: the gold answer's log-probability per token.

A QA probe with `gold_logprob: true` (smf.probes.qa) keeps, per answer, the gold answer's summed
log-probability teacher-forced after the prompt (`gold_logprob`) and its tokens (`gold_tokens`).
A question's score is their ratio, a run's the mean over questions and then over seeds, as for
accuracy; the table gives each run's change against the base model (positive: more probability
on the gold answer), with its interval from the trade-off report's shared draws of seeds and
questions (smf.report.bootstrap), so it is paired with the base model like every gain there.

Accuracy on a few hundred questions moves in whole-question steps and is noisy at the small gains
a sparse method makes, so the report also matches arms on this continuous measure: the learning
probe's gold log-prob change becomes the learning axis of a second trade-off
(`matched_on_gold`), read and paired exactly as the accuracy one (smf.report.comparisons).

A probe is reported only when every eval JSON of the comparison (base model, every run and
seed) keeps gold log-probabilities; without any such probe the table is a one-line note, so
the rule's outputs always exist.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from smf.report import bootstrap, comparisons, paper_tables, pareto_plot, tradeoff_tables
from smf.report.comparisons import Comparison, ProbeScores, effects, seed_path

NO_GOLD = "no probe of this experiment keeps gold log-probabilities"
ID_COLUMNS = ["run", "arm", "lr", "seeds"]


def gold_scores(path: str) -> dict[str, float] | None:
    """{question id: gold log-prob per token} of one eval JSON; None when any answer lacks it."""
    answers = json.loads(Path(path).read_text(encoding="utf-8")).get("answers")
    if not answers or any("gold_logprob" not in a or "gold_tokens" not in a for a in answers):
        return None
    if any(a["gold_tokens"] < 1 for a in answers):
        raise ValueError(f"{path}: an answer has gold_tokens < 1")
    return {str(a["id"]): float(a["gold_logprob"]) / a["gold_tokens"] for a in answers}


def probe_gold(
    df: pd.DataFrame, probe: str, runs: Sequence[str], seeds: Mapping[str, Sequence[int]]
):
    """The probe's ProbeScores of gold log-prob per token (None unless every file keeps it),
    questions in the order the comparison's draws use (the base model's first file's)."""
    rows = df[df["probe"] == probe]
    base = [gold_scores(p) for p in rows[rows["arm"] == paper_tables.REFERENCE_ARM]["path"]]
    per_run = {
        run: [gold_scores(seed_path(rows, run, probe, s)) for s in seeds[run]] for run in runs
    }
    if not base or any(g is None for g in base):
        return None
    if any(g is None for gs in per_run.values() for g in gs):
        return None
    scores = ProbeScores(probe, 1.0, True, None, seeds={r: tuple(seeds[r]) for r in runs})
    return comparisons.per_question(scores, base, per_run, " (gold log-probs)")


def gold_effects(df: pd.DataFrame, cmp: Comparison) -> tuple[dict, dict[str, float], list[str]]:
    """({probe: {run: (change vs base, replicates)}}, {probe: base model's value}, probes whose
    files keep gold log-probs only in part), under the comparison's shared draws."""
    if cmp.draws is None:
        raise ValueError("gold_effects: the comparison keeps no draws")
    runs = [run for family in cmp.families.values() for run in family]
    found, base, partial = {}, {}, []
    for probe in dict.fromkeys([cmp.learning_probe, *cmp.forgetting_probes]):
        if not cmp.per_question.get(probe):
            continue
        scores = probe_gold(df, probe, runs, cmp.seeds)
        if scores is None:
            paths = df[df["probe"] == probe]["path"]
            if any(gold_scores(p) is not None for p in paths):
                partial.append(probe)
            continue
        found[probe] = effects(scores, cmp.draws, learning=True)
        base[probe] = float(scores.base.mean())
    return found, base, partial


def gold_table(cmp: Comparison, found: Mapping[str, dict]) -> pd.DataFrame:
    """One row per run (families in order, rate order within): its change per probe with the
    interval and whether it excludes zero."""
    rows = []
    for family in cmp.families:
        for run in cmp.ordered(family):
            row = {"run": run, "arm": family, "lr": cmp.lrs[run], "seeds": len(cmp.seeds[run])}
            for probe, by_run in found.items():
                point, rep = by_run[run]
                low, high, _ = bootstrap.percentile_interval(rep, cmp.settings.confidence)
                col = f"{probe}_gold_logprob"
                row |= {col: point, f"{col}_low": low, f"{col}_high": high,
                        f"{col}_excludes_zero": bootstrap.excludes_zero(low, high)}  # fmt: skip
            rows.append(row)
    return pd.DataFrame(rows, columns=list(rows[0]) if rows else ID_COLUMNS)


def _label(probe: str) -> str:
    return paper_tables.PROBE_LABELS.get(probe, probe)


def gold_markdown(cmp: Comparison, table: pd.DataFrame, base: Mapping[str, float], partial):
    """The md: what is measured and resampled, the base model's values, one row per run."""
    pct = int(round(cmp.settings.confidence * 100))
    probes = list(base)
    over = "seeds and questions" if cmp.n_seeds() > 1 else "questions (1 seed)"
    lines = ["# Gold-answer log-probability vs base", "",
             "Change against the base model in the gold answer's mean log-probability per token "
             "(teacher-forced; nats; per question gold_logprob / gold_tokens, mean over questions, "
             "then over seeds); positive: the run puts more probability on the gold answer. "
             f"Intervals: {pct} % percentile bootstrap over {over}, the trade-off report's "
             f"shared draws ({cmp.settings.n_resamples} resamples), paired with the base model. "
             + cmp.seeds_note(), ""]  # fmt: skip
    lines += [f"- Base model on {_label(p)}: {v:.4f} nats per token." for p, v in base.items()]
    lines += [f"- {_label(p)}: not every eval JSON keeps gold log-probabilities; not reported."
              for p in partial]  # fmt: skip
    head = ["run", "arm", "lr", *(f"{_label(p)} change [{pct} % CI] | excludes 0" for p in probes)]
    lines += ["", "| " + " | ".join(head) + " |", "|---" * (3 + 2 * len(probes)) + "|"]
    for _, row in table.iterrows():
        cells = [row["run"], row["arm"], f"{row['lr']:g}"]
        for p in probes:
            c = f"{p}_gold_logprob"
            cells += [f"{row[c]:+.4f} [{row[c + '_low']:+.4f}, {row[c + '_high']:+.4f}]",
                      "yes" if row[c + "_excludes_zero"] else "no"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_gold_tables(df: pd.DataFrame, cmp: Comparison, csv: str | Path, md: str | Path) -> dict:
    """gold_logprob.{csv,md}; without any probe that keeps gold log-probs, a header-only csv and
    a one-line note. Returns {probe: {run: (change, replicates)}} (empty without)."""
    found, base, partial = gold_effects(df, cmp)
    if not found:
        pd.DataFrame(columns=ID_COLUMNS).to_csv(csv, index=False)
        kept = f" ({', '.join(map(_label, partial))}: only some eval JSONs)" if partial else ""
        Path(md).write_text(f"{NO_GOLD[0].upper()}{NO_GOLD[1:]}{kept}.\n", encoding="utf-8")
        return found
    table = gold_table(cmp, found)
    table.to_csv(csv, index=False, float_format="%.6g")
    lines = gold_markdown(cmp, table, base, partial)
    Path(md).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return found


def matched_on_gold(cmp: Comparison, found: Mapping[str, dict]) -> Comparison | None:
    """The comparison with the learning probe's gold log-prob change as its learning axis
    (levels every `gold_level_step` nats); None when the learning probe keeps none."""
    if cmp.learning_probe not in found:
        return None
    return dataclasses.replace(cmp, learning=found[cmp.learning_probe], learning_unit="nats")


def write_gold_matched(cmp: Comparison, found: Mapping[str, dict], out: Mapping, chance) -> None:
    """matched_gold.{md,csv}, matched_gold_differences.csv and its Pareto figure (out keys
    gold_matched_md, _csv, _differences_csv, _png, _pdf): forgetting at gold log-prob levels
    and the paired differences between arms; without gold log-probs on the learning probe, a
    one-line note, header-only CSVs and a figure that says so."""
    files = {"md": out["gold_matched_md"], "csv": out["gold_matched_csv"],
             "differences_csv": out["gold_matched_differences_csv"]}  # fmt: skip
    on_gold = matched_on_gold(cmp, found)
    if on_gold is None:
        note = f"{_label(cmp.learning_probe)} keeps no gold log-probabilities in every eval JSON"
        Path(files["md"]).write_text(f"{note}: no matching on them.\n", encoding="utf-8")
        for key in ("csv", "differences_csv"):
            pd.DataFrame(columns=["probe", "level"]).to_csv(files[key], index=False)
        if "gold_matched_png" in out:
            pareto_plot.plot_note(note, out["gold_matched_png"], out["gold_matched_pdf"])
        return
    levels, diffs = comparisons.at_levels(on_gold)
    runs = comparisons.runs_table(on_gold)
    tradeoff_tables.write_tradeoff_tables(on_gold, runs, levels, diffs, files, chance)
    if "gold_matched_png" in out:  # absent only in a DAG parsed before this output existed
        pareto_plot.plot_pareto_fronts(
            on_gold, runs, out["gold_matched_png"], out["gold_matched_pdf"]
        )
