"""Learning-rate sweeps (smf.sweeps) and the trade-off report built from them
(smf.tradeoff_report), on synthetic eval JSONs: no model."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from smf import report, sweeps, tradeoff_report
from smf.report_stages import build_tradeoff

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


def points_of(df, families):
    return tradeoff_report.tradeoff_points(df, families, "medmcqa", ["wikitext"])


def test_run_points_are_seed_means_against_base(eval_paths):
    df = report.load_eval_results(eval_paths)
    points = tradeoff_report.run_points(df, ["full", "smf_lr3"], "medmcqa", "wikitext")
    assert list(points["run"]) == ["full", "smf_lr3"]
    assert points["learning"].tolist() == pytest.approx([20.0, 10.0])  # points, not fractions
    assert points["forgetting"].tolist() == pytest.approx([5.0, 0.5])  # perplexity increase
    assert points["forgetting_std"].tolist() == pytest.approx([2**0.5, 0.1 * 2**0.5])
    assert points["seeds"].tolist() == [2, 2]


def test_matched_table_interpolates_at_the_level_every_family_reaches(eval_paths):
    df = report.load_eval_results(eval_paths)
    table = tradeoff_report.matched_table(points_of(df, FAMILIES), "medmcqa")
    # smf reaches +10 at most: full's front (0,0)-(6,1)-(20,5) gives 1 + 4 * 4/14 there
    assert table.attrs["levels"] == {"wikitext": pytest.approx(10.0)}
    assert table.loc["full", "wikitext_at_matched"] == pytest.approx(1 + 4 * 4 / 14)
    assert table.loc["smf", "wikitext_at_matched"] == pytest.approx(0.5)
    assert table["runs"].tolist() == [2, 2]
    assert table["best_learning"].tolist() == pytest.approx([20.0, 10.0])


def test_a_family_without_results_is_an_error_naming_the_run(eval_paths):
    df = report.load_eval_results(eval_paths)
    with pytest.raises(ValueError, match="smf_lr9"):
        tradeoff_report.matched_table(points_of(df, {"smf": ["smf", "smf_lr9"]}), "medmcqa")


def test_learning_gain_interval_is_a_paired_bootstrap_over_questions(eval_paths):
    df = report.load_eval_results(eval_paths)
    runs = tradeoff_report.runs_table(points_of(df, FAMILIES))
    assert list(runs.index) == ["full_lr1e-05", "full", "smf", "smf_lr3"]
    full = runs.loc["full"]
    # every base-correct question stays correct and 20 more are right: the paired difference
    # is a mean of 20 ones in 100 questions, its interval inside (0, 40) and around 20
    assert 10 < full["learning_low"] < 20 < full["learning_high"] < 30
    half = (full["learning_high"] - full["learning_low"]) / 2
    assert half > 0.25 * 20 and not full["measured"]  # +20 of 100 questions: ±8, noise
    # smf: +5 points from 4 and 6 extra right answers per seed, none lost: above zero, but
    # not measured by the quarter-of-the-gain rule
    assert 0 < runs.loc["smf", "learning_low"] < 5 < runs.loc["smf", "learning_high"]
    assert not runs.loc["smf", "measured"]
    assert runs.loc["smf_lr3", "wikitext_forgetting"] == pytest.approx(0.5)


def test_questions_that_differ_from_the_base_models_are_an_error(eval_paths):
    path = next(p for p in eval_paths if "smf-seed0/medmcqa" in p)
    record = json.loads(Path(path).read_text())
    record["answers"][0]["id"] = "other"
    Path(path).write_text(json.dumps(record))
    df = report.load_eval_results(eval_paths)
    with pytest.raises(ValueError, match="smf-seed0"):
        tradeoff_report.runs_table(points_of(df, FAMILIES))


def test_build_tradeoff_writes_table_and_figure(eval_paths, tmp_path):
    out = {k: tmp_path / f"out.{k}" for k in ("csv", "runs_csv", "md", "png", "pdf")}
    build_tradeoff(eval_paths, FAMILIES, "medmcqa", ["wikitext"], out)
    runs = pd.read_csv(out["runs_csv"], index_col=0)
    assert list(runs.index) == ["full_lr1e-05", "full", "smf", "smf_lr3"]
    csv = pd.read_csv(out["csv"], index_col=0)
    assert csv.loc["smf", "wikitext_at_matched"] == pytest.approx(0.5)
    md = out["md"].read_text()
    assert "| smf | 2 | +10.00 | +0.50 |" in md
    assert "gain of +10.00" in md
    assert out["png"].stat().st_size > 1000 and out["pdf"].stat().st_size > 1000


def test_no_matched_level_is_reported_not_invented(tmp_path):
    paths = [write_eval(tmp_path, "base", None, p, v) for p, v in BASE.items()]
    for arm, acc, ppl in (("a", 0.40, 11.0), ("b", 0.20, 9.0)):  # b never learns
        paths += [write_eval(tmp_path, arm, 0, "medmcqa", acc),
                  write_eval(tmp_path, arm, 0, "wikitext", ppl)]  # fmt: skip
    df = report.load_eval_results(paths)
    table = tradeoff_report.matched_table(points_of(df, {"a": ["a"], "b": ["b"]}), "medmcqa")
    assert table.attrs["levels"] == {"wikitext": None}
    assert table["wikitext_at_matched"].isna().all()
    runs = tradeoff_report.runs_table(points_of(df, {"a": ["a"], "b": ["b"]}))
    out = {"csv": tmp_path / "t.csv", "runs_csv": tmp_path / "r.csv", "md": tmp_path / "t.md"}
    tradeoff_report.write_tradeoff_tables(table, runs, out)
    assert "no learning level every arm reaches" in (tmp_path / "t.md").read_text()


def test_a_large_gain_counts_as_measured(tmp_path):
    paths = [write_eval(tmp_path, "base", None, p, v) for p, v in BASE.items()]
    paths.append(write_eval(tmp_path, "a", 0, "medmcqa", 0.90))
    paths.append(write_eval(tmp_path, "a", 0, "wikitext", 10.0))
    df = report.load_eval_results(paths)
    row = tradeoff_report.runs_table(points_of(df, {"a": ["a"]})).loc["a"]
    assert row["learning"] == pytest.approx(60.0)
    assert row["learning_high"] - row["learning_low"] < 0.5 * 60 and row["measured"]


def test_each_runs_interval_is_bootstrapped_once_for_all_probes(eval_paths, monkeypatch):
    df = report.load_eval_results(eval_paths)
    calls = []
    real = tradeoff_report.gain_interval
    monkeypatch.setattr(tradeoff_report, "gain_interval", lambda *a: calls.append(a[1]) or real(*a))
    points = tradeoff_report.tradeoff_points(df, FAMILIES, "medmcqa", ["wikitext", "wikitext"])
    tradeoff_report.matched_table(points, "medmcqa")
    tradeoff_report.runs_table(points)
    assert sorted(calls) == sorted(run for runs in FAMILIES.values() for run in runs)
