"""Learning-rate sweeps (smf.pipeline.sweeps) and the trade-off report built from them
(smf.report.comparisons), on synthetic eval JSONs: no model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from smf.pipeline import sweeps
from smf.pipeline.report_jobs import build_tradeoff
from smf.report import comparisons, paper_tables, tradeoff_tables

ARMS = {
    "full": {"kind": "full", "train": {"lr": 5e-5}, "lr_sweep": [1e-5, 2e-4]},
    "smf_kl": {"kind": "smf", "train": {"lr": 2.0}, "smf": {"top_t": 500}, "lr_sweep": []},
    "lora": {"kind": "lora", "train": {"lr": 1e-3}, "lora": {"r": 8}},
}


def test_each_rate_becomes_an_arm_with_only_lr_changed():
    arms = sweeps.expand_sweeps(ARMS)
    assert list(arms) == ["full", "full_lr1e-05", "full_lr0.0002", "smf_kl", "lora"]
    assert arms["full_lr0.0002"] == {"kind": "full", "train": {"lr": 2e-4}}
    assert arms["full"] == {"kind": "full", "train": {"lr": 5e-5}}  # lr_sweep removed
    assert ARMS["full"]["train"]["lr"] == 5e-5  # the input is not modified
    assert arms["smf_kl"] == {"kind": "smf", "train": {"lr": 2.0}, "smf": {"top_t": 500}}


def test_families_follow_run_arms():
    assert sweeps.families(ARMS, ["smf_kl", "full"]) == {
        "smf_kl": ["smf_kl"],
        "full": ["full", "full_lr1e-05", "full_lr0.0002"],
    }


@pytest.mark.parametrize(
    ("sweep", "needle"),
    [([1e-5, 1e-5], "listed twice"), ([5e-5], "own train.lr")],
)
def test_a_rate_listed_twice_is_an_error_naming_the_arm(sweep, needle):
    arms = {"full": {"kind": "full", "train": {"lr": 5e-5}, "lr_sweep": sweep}}
    with pytest.raises(ValueError, match=needle) as err:
        sweeps.expand_sweeps(arms)
    assert "arms.full.lr_sweep" in str(err.value)


def test_a_sweep_point_clashing_with_an_arm_is_an_error():
    arms = {
        "a": {"kind": "full", "train": {"lr": 1.0}, "lr_sweep": [0.5]},
        "a_lr0.5": {"kind": "full", "train": {"lr": 2.0}},
    }
    with pytest.raises(ValueError, match="clashes"):
        sweeps.expand_sweeps(arms)


# synthetic results: learning probe accuracy (higher better), forgetting probe perplexity
BASE = {"medmcqa": 0.30, "wikitext": 10.0}
RUNS = {  # run -> per seed (medmcqa, wikitext)
    "full_lr1e-05": [(0.35, 11.0), (0.37, 11.0)],  # +6 points, +1 ppl
    "full": [(0.50, 14.0), (0.50, 16.0)],  # +20, +5
    "smf": [(0.34, 10.2), (0.36, 10.2)],  # +5, +0.2
    "smf_lr3": [(0.40, 10.4), (0.40, 10.6)],  # +10, +0.5
}
FAMILIES = {"full": ["full_lr1e-05", "full"], "smf": ["smf", "smf_lr3"]}


N_QUESTIONS = 100


def write_eval(root: Path, arm: str, seed: int | None, probe: str, value: float) -> Path:
    kinds = {"medmcqa": ("multiple_choice", "accuracy", True),
             "wikitext": ("perplexity", "perplexity", False)}  # fmt: skip
    kind, metric, higher = kinds[probe]
    model = arm if seed is None else f"{arm}-seed{seed}"
    record = {"model": model, "arm": arm, "seed": seed, "probe": probe, "kind": kind,
              "protocol": "paper3", "metric": metric, "value": value,
              "higher_is_better": higher, "n": N_QUESTIONS}  # fmt: skip
    if kind == "multiple_choice":  # the first value x 100 questions right
        right = round(value * N_QUESTIONS)
        record["answers"] = [{"id": f"q{i}", "correct": i < right} for i in range(N_QUESTIONS)]
        record["predictions"] = dict.fromkeys("ABCD", N_QUESTIONS // 4)
    path = root / model / f"{probe}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


@pytest.fixture()
def eval_paths(tmp_path: Path) -> list[str]:
    paths = [write_eval(tmp_path, "base", None, p, v) for p, v in BASE.items()]
    for run, seeds in RUNS.items():
        for seed, (acc, ppl) in enumerate(seeds):
            paths += [write_eval(tmp_path, run, seed, "medmcqa", acc),
                      write_eval(tmp_path, run, seed, "wikitext", ppl)]  # fmt: skip
    return [str(p) for p in paths]


LRS = {"full_lr1e-05": 1e-5, "full": 5e-5, "smf": 2.0, "smf_lr3": 3.0, "a": 1.0, "b": 1.0}
SETTINGS = comparisons.Settings(level_step=5.0, n_resamples=400)


def compare(df, families, settings=SETTINGS):
    return comparisons.compare(df, families, LRS, "medmcqa", ["wikitext"], settings)


def test_runs_are_seed_means_against_base_with_intervals(eval_paths):
    df = paper_tables.load_eval_results(eval_paths)
    runs = comparisons.runs_table(compare(df, FAMILIES))
    assert list(runs.index) == ["full_lr1e-05", "full", "smf", "smf_lr3"]  # rate order
    assert runs.loc[["full", "smf_lr3"], "learning"].tolist() == pytest.approx([20.0, 10.0])
    assert runs.loc[["full", "smf_lr3"], "wikitext_forgetting"].tolist() == pytest.approx(
        [5.0, 0.5]
    )
    full = runs.loc["full"]
    # 20 more right of 100, none lost, both seeds agree: an interval around 20 that excludes 0
    assert 10 < full["learning_low"] < 20 < full["learning_high"] < 30
    assert full["learning_excludes_zero"]
    # these perplexity JSONs keep no per-window losses: resampled over the two seeds only, so the
    # interval spans the two seeds' values (+4 and +6)
    assert full["wikitext_forgetting_low"] >= 4.0 - 1e-9
    assert full["wikitext_forgetting_high"] <= 6.0 + 1e-9


def test_a_family_without_results_is_an_error_naming_the_run(eval_paths):
    df = paper_tables.load_eval_results(eval_paths)
    with pytest.raises(ValueError, match="smf_lr9"):
        compare(df, {"smf": ["smf", "smf_lr9"]})


def test_levels_are_read_between_bracketing_runs_only(eval_paths):
    df = paper_tables.load_eval_results(eval_paths)
    levels, diffs = comparisons.at_levels(compare(df, FAMILIES))
    at = levels.set_index(["level", "arm"])
    assert sorted(levels["level"].unique()) == [5.0, 10.0, 15.0, 20.0]
    # full's runs learn +6 and +20: +5 is below both, so no value (no origin line)
    assert np.isnan(at.loc[(5.0, "full"), "forgetting"])
    assert "every run learns more" in at.loc[(5.0, "full"), "reason"]
    assert at.loc[(10.0, "full"), "forgetting"] == pytest.approx(1 + 4 * 4 / 14)
    assert at.loc[(10.0, "smf"), "forgetting"] == pytest.approx(0.5)
    assert "no run reaches it" in at.loc[(15.0, "smf"), "reason"]
    pair = diffs[(diffs["level"] == 10.0)].iloc[0]
    assert (pair["arm_a"], pair["arm_b"]) == ("full", "smf")
    assert pair["value"] == pytest.approx(1 + 4 * 4 / 14 - 0.5)


def test_the_origin_line_is_an_explicit_option(eval_paths):
    df = paper_tables.load_eval_results(eval_paths)
    settings = comparisons.Settings(level_step=5.0, n_resamples=400, anchor_origin=True)
    levels, _ = comparisons.at_levels(compare(df, FAMILIES, settings))
    row = levels.set_index(["level", "arm"]).loc[(5.0, "full")]
    assert row["forgetting"] == pytest.approx(5 / 6)  # on the line (0,0)-(6,1)
    assert row["between"].startswith("base (origin line)")


def test_questions_that_differ_from_the_base_models_are_an_error(eval_paths):
    path = next(p for p in eval_paths if "smf-seed0/medmcqa" in p)
    record = json.loads(Path(path).read_text())
    record["answers"][0]["id"] = "other"
    Path(path).write_text(json.dumps(record))
    df = paper_tables.load_eval_results(eval_paths)
    with pytest.raises(ValueError, match="smf"):
        compare(df, FAMILIES)


def test_build_tradeoff_writes_tables_and_figure(eval_paths, tmp_path):
    keys = ("csv", "runs_csv", "differences_csv", "md", "png", "pdf")
    out = {k: tmp_path / f"out.{k}" for k in keys}
    build_tradeoff(eval_paths, FAMILIES, LRS, "medmcqa", ["wikitext"], out,
                   {"level_step": 5.0, "n_resamples": 400})  # fmt: skip
    runs = pd.read_csv(out["runs_csv"], index_col=0)
    assert list(runs.index) == ["full_lr1e-05", "full", "smf", "smf_lr3"]
    levels = pd.read_csv(out["csv"])
    smf10 = levels[(levels["arm"] == "smf") & (levels["level"] == 10.0)].iloc[0]
    assert smf10["forgetting"] == pytest.approx(0.5)
    assert len(pd.read_csv(out["differences_csv"])) >= 1
    md = out["md"].read_text()
    assert "measured" not in md and "within noise" not in md
    assert "Chance on MedMCQA" in md and "25.0 %" in md  # 4 options
    assert "– (every run learns more" in md
    assert out["png"].stat().st_size > 1000 and out["pdf"].stat().st_size > 1000


def test_one_seed_is_said_in_the_table(tmp_path):
    paths = [write_eval(tmp_path, "base", None, p, v) for p, v in BASE.items()]
    for arm, acc, ppl in (("a", 0.40, 11.0), ("b", 0.20, 9.0)):  # b never learns
        paths += [write_eval(tmp_path, arm, 0, "medmcqa", acc),
                  write_eval(tmp_path, arm, 0, "wikitext", ppl)]  # fmt: skip
    out = {k: tmp_path / f"t.{k}" for k in ("csv", "runs_csv", "differences_csv", "md")}
    df = paper_tables.load_eval_results(paths)
    cmp = compare(df, {"a": ["a"], "b": ["b"]})
    levels, diffs = comparisons.at_levels(cmp)
    tradeoff_tables.write_tradeoff_tables(cmp, comparisons.runs_table(cmp), levels, diffs, out, {})
    md = (tmp_path / "t.md").read_text()
    assert "One seed: the intervals are over questions only" in md
    assert "nothing (1 seed, no per-question scores)" in md
    # nothing of WikiText is resampled with one seed: no (zero-width) interval is shown
    runs = comparisons.runs_table(cmp)
    assert runs["wikitext_forgetting_low"].isna().all()
    assert "+1.00 (no interval)" in md
    assert diffs.empty  # b brackets no level: no difference is invented
