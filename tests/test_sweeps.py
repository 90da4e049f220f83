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


def write_eval(root: Path, arm: str, seed: int | None, probe: str, value: float) -> Path:
    kinds = {"medmcqa": ("multiple_choice", "accuracy", True),
             "wikitext": ("perplexity", "perplexity", False)}  # fmt: skip
    kind, metric, higher = kinds[probe]
    model = arm if seed is None else f"{arm}-seed{seed}"
    record = {"model": model, "arm": arm, "seed": seed, "probe": probe, "kind": kind,
              "protocol": "paper3", "metric": metric, "value": value,
              "higher_is_better": higher, "n": 100}  # fmt: skip
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
    table = tradeoff_report.matched_table(df, FAMILIES, "medmcqa", ["wikitext"])
    # smf reaches +10 at most: full's front (0,0)-(6,1)-(20,5) gives 1 + 4 * 4/14 there
    assert table.attrs["levels"] == {"wikitext": pytest.approx(10.0)}
    assert table.loc["full", "wikitext_at_matched"] == pytest.approx(1 + 4 * 4 / 14)
    assert table.loc["smf", "wikitext_at_matched"] == pytest.approx(0.5)
    assert table["runs"].tolist() == [2, 2]
    assert table["best_learning"].tolist() == pytest.approx([20.0, 10.0])


def test_a_family_without_results_is_an_error_naming_the_run(eval_paths):
    df = report.load_eval_results(eval_paths)
    with pytest.raises(ValueError, match="smf_lr9"):
        tradeoff_report.matched_table(df, {"smf": ["smf", "smf_lr9"]}, "medmcqa", ["wikitext"])


def test_build_tradeoff_writes_table_and_figure(eval_paths, tmp_path):
    out = {k: tmp_path / f"out.{k}" for k in ("csv", "md", "png", "pdf")}
    build_tradeoff(eval_paths, FAMILIES, "medmcqa", ["wikitext"], out)
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
    table = tradeoff_report.matched_table(df, {"a": ["a"], "b": ["b"]}, "medmcqa", ["wikitext"])
    assert table.attrs["levels"] == {"wikitext": None}
    assert table["wikitext_at_matched"].isna().all()
    tradeoff_report.write_matched_table(table, tmp_path / "t.csv", tmp_path / "t.md")
    assert "no learning level every arm reaches" in (tmp_path / "t.md").read_text()
