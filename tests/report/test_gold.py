"""The gold-answer log-probability table (smf.report.gold) on synthetic QA eval JSONs with known
per-answer gold log-probs: the change against the base model and its paired interval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from smf.pipeline.report_jobs import build_tradeoff
from smf.report import comparisons, gold, paper_tables

N = 150
SETTINGS = comparisons.Settings(level_step=10.0, n_resamples=500)
RNG = np.random.default_rng(0)
BASE_GOLD = RNG.uniform(-4.0, -1.0, N)  # per-token gold log-prob of each question
TOKENS = RNG.integers(1, 6, N)


def _qa(root: Path, arm: str, seed: int | None, probe: str, right: int, per_token=None) -> str:
    model = arm if seed is None else f"{arm}-seed{seed}"
    answers = [{"id": f"q{i}", "output": "x", "correct": i < right} for i in range(N)]
    if per_token is not None:
        for a, g, k in zip(answers, per_token, TOKENS, strict=True):
            a["gold_logprob"], a["gold_tokens"] = float(g * k), int(k)
    record = {"model": model, "arm": arm, "seed": seed, "probe": probe, "kind": "qa",
              "protocol": "paper3", "metric": "accuracy", "value": right / N,
              "higher_is_better": True, "n": N, "answers": answers}  # fmt: skip
    path = root / model / f"{probe}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return str(path)


RUNS = {  # run -> (facts right, gold shift on facts, gold noise), two seeds each
    "same": (30, 0.0, 0.0),  # exactly the base model's gold log-probs
    "noisy": (30, 0.0, 0.3),  # the base model's plus zero-mean noise per seed and question
    "learns": (90, 1.0, 0.3),  # +1 nat per token on every gold answer
}
FAMILIES = {"a": ["same", "learns"], "b": ["noisy"]}
LRS = {"same": 1.0, "learns": 2.0, "noisy": 1.0}


def _evals(root: Path, gold_on=("facts", "triviaqa"), drop=None, seeds=None) -> list[str]:
    """Eval JSONs of the base model and RUNS (seeds 0 and 1, or `seeds[run]`)."""
    rng = np.random.default_rng(1)
    has = {p: (p in gold_on) for p in ("facts", "triviaqa")}
    paths = [_qa(root, "base", None, p, 30, BASE_GOLD if has[p] else None) for p in has]
    for run, (right, shift, noise) in RUNS.items():
        for seed in (seeds or {}).get(run, (0, 1)):
            g = BASE_GOLD + shift + rng.normal(0, noise, N) if noise else BASE_GOLD + shift
            keep = drop != (run, seed)
            paths += [_qa(root, run, seed, "facts", right, g if has["facts"] and keep else None),
                      _qa(root, run, seed, "triviaqa", 30,
                          BASE_GOLD - shift if has["triviaqa"] else None)]  # fmt: skip
    return paths


def _compare(paths):
    df = paper_tables.load_eval_results(paths)
    return df, comparisons.compare(df, FAMILIES, LRS, "facts", ["triviaqa"], SETTINGS)


def test_the_change_and_its_interval_follow_the_known_shift(tmp_path):
    df, cmp = _compare(_evals(tmp_path))
    found, base, partial = gold.gold_effects(df, cmp)
    assert list(found) == ["facts", "triviaqa"] and partial == []
    assert base["facts"] == pytest.approx(BASE_GOLD.mean())
    table = gold.gold_table(cmp, found).set_index("run")
    assert list(table.index) == ["same", "learns", "noisy"]
    learns = table.loc["learns"]
    assert learns["facts_gold_logprob"] == pytest.approx(1.0, abs=0.1)
    assert 0 < learns["facts_gold_logprob_low"] < 1.0 < learns["facts_gold_logprob_high"]
    assert learns["facts_gold_logprob_excludes_zero"]
    assert learns["triviaqa_gold_logprob"] == pytest.approx(-1.0)  # lost on the other probe
    same, noisy = table.loc["same"], table.loc["noisy"]
    assert same["facts_gold_logprob"] == 0.0 and not same["facts_gold_logprob_excludes_zero"]
    assert noisy["facts_gold_logprob_low"] < 0 < noisy["facts_gold_logprob_high"]
    assert not noisy["facts_gold_logprob_excludes_zero"]


def test_build_tradeoff_writes_the_gold_table(tmp_path):
    keys = ("csv", "runs_csv", "differences_csv", "md", "png", "pdf", "gold_csv", "gold_md")
    out = {k: tmp_path / f"out.{k}" for k in keys}
    build_tradeoff(_evals(tmp_path / "eval"), FAMILIES, LRS, "facts", ["triviaqa"], out,
                   {"level_step": 10.0, "n_resamples": 300})  # fmt: skip
    csv = pd.read_csv(out["gold_csv"], index_col="run")
    assert csv.loc["learns", "facts_gold_logprob"] == pytest.approx(1.0, abs=0.1)
    assert list(csv.columns[:3]) == ["arm", "lr", "seeds"]
    md = out["gold_md"].read_text()
    assert "| learns | a | 2 | +" in md and "Base model on Facts" in md
    assert "are in this report's gold_logprob table" in out["md"].read_text()


def test_without_gold_data_the_table_is_a_note(tmp_path):
    df, cmp = _compare(_evals(tmp_path, gold_on=()))
    csv, md = tmp_path / "g.csv", tmp_path / "g.md"
    assert gold.write_gold_tables(df, cmp, csv, md) == {}
    assert md.read_text().lower().startswith(gold.NO_GOLD)
    assert len(md.read_text().splitlines()) == 1
    assert list(pd.read_csv(csv).columns) == gold.ID_COLUMNS and pd.read_csv(csv).empty


def test_a_probe_kept_by_only_some_files_is_left_out_and_named(tmp_path):
    df, cmp = _compare(_evals(tmp_path, drop=("learns", 1)))
    found, _, partial = gold.gold_effects(df, cmp)
    assert list(found) == ["triviaqa"] and partial == ["facts"]
    md = tmp_path / "g.md"
    gold.write_gold_tables(df, cmp, tmp_path / "g.csv", md)
    assert "Facts: not every eval JSON keeps gold log-probabilities" in md.read_text()


MATCHED = {  # run -> (gold shift on facts, TriviaQA right of the base model's 30)
    "a_low": (0.2, 30), "a_high": (1.2, 0),  # loses all 30: 20 points
    "b_low": (0.2, 30), "b_high": (1.2, 20),  # loses 10: 6.67 points
}  # fmt: skip


def _matched_evals(root: Path) -> list[str]:
    paths = [_qa(root, "base", None, "facts", 0, BASE_GOLD),
             _qa(root, "base", None, "triviaqa", 30)]  # fmt: skip
    for run, (shift, right) in MATCHED.items():
        paths += [_qa(root, run, 0, "facts", 0, BASE_GOLD + shift),
                  _qa(root, run, 0, "triviaqa", right)]  # fmt: skip
    return paths


def test_matching_on_gold_reads_forgetting_at_nats_levels_between_real_runs(tmp_path):
    df = paper_tables.load_eval_results(_matched_evals(tmp_path))
    families = {"a": ["a_low", "a_high"], "b": ["b_low", "b_high"]}
    lrs = {"a_low": 1.0, "a_high": 2.0, "b_low": 1.0, "b_high": 2.0}
    settings = comparisons.Settings(gold_level_step=0.5, n_resamples=300)
    cmp = comparisons.compare(df, families, lrs, "facts", ["triviaqa"], settings)
    assert all(point == 0.0 for point, _ in cmp.learning.values())  # accuracy never moves
    found, _, _ = gold.gold_effects(df, cmp)
    on_gold = gold.matched_on_gold(cmp, found)
    assert on_gold.learning_unit == "nats" and on_gold.level_step == 0.5
    levels, diffs = comparisons.at_levels(on_gold)
    at = levels.set_index(["level", "arm"])["forgetting"]
    assert list(levels["level"].unique()) == [0.5, 1.0]
    # 0.5 nats is 30 % of the way from +0.2 to +1.2: 30 % of each arm's high-rate loss
    assert at[(0.5, "a")] == pytest.approx(6.0) and at[(0.5, "b")] == pytest.approx(2.0)
    assert at[(1.0, "a")] == pytest.approx(16.0) and at[(1.0, "b")] == pytest.approx(16 / 3)
    diff = diffs.set_index("level").loc[1.0]
    assert diff["value"] == pytest.approx(16.0 - 16 / 3) and diff["low"] > 0


def test_build_tradeoff_writes_the_gold_matched_tables_or_a_note(tmp_path):
    keys = ("csv", "runs_csv", "differences_csv", "md", "png", "pdf", "gold_csv", "gold_md",
            "gold_matched_csv", "gold_matched_md", "gold_matched_differences_csv",
            "gold_matched_png", "gold_matched_pdf")  # fmt: skip

    def paths(stem: str) -> dict[str, Path]:  # figures need a real suffix
        return {k: tmp_path / f"{stem}_{k}.{k.rsplit('_', 1)[-1]}" for k in keys}

    out = paths("out")
    build_tradeoff(_evals(tmp_path / "eval"), FAMILIES, LRS, "facts", ["triviaqa"], out,
                   {"level_step": 10.0, "n_resamples": 300, "gold_level_step": 0.25})  # fmt: skip
    md = out["gold_matched_md"].read_text()
    assert md.startswith("# Learning (Facts, gold log-prob per token) vs forgetting")
    assert "Levels every 0.25 nats of gain" in md
    levels = pd.read_csv(out["gold_matched_csv"])
    assert sorted(levels["level"].unique()) == [0.25, 0.5, 0.75, 1.0]
    assert out["gold_matched_png"].stat().st_size > 1000
    out = paths("none")
    build_tradeoff(_evals(tmp_path / "none", gold_on=()), FAMILIES, LRS, "facts", ["triviaqa"],
                   out, {"level_step": 10.0, "n_resamples": 300})  # fmt: skip
    assert "keeps no gold log-probabilities" in out["gold_matched_md"].read_text()
    assert pd.read_csv(out["gold_matched_differences_csv"]).empty
    assert out["gold_matched_pdf"].stat().st_size > 0  # a figure that says why it is empty


def test_runs_may_have_different_seeds(tmp_path):
    # two seeds at an arm's own rate, one at the other runs (issue 27's middle-rate seeds)
    seeds = {"learns": (0,), "noisy": (0,)}
    keys = ("csv", "runs_csv", "differences_csv", "md", "png", "pdf", "gold_csv", "gold_md")
    out = {k: tmp_path / f"out.{k}" for k in keys}
    paths = _evals(tmp_path / "eval", seeds=seeds)
    df, cmp = _compare(paths)
    assert cmp.seeds == {"same": [0, 1], "learns": [0], "noisy": [0]}
    assert sorted(cmp.draws.seeds) == [(0,), (0, 1)]
    found, _, _ = gold.gold_effects(df, cmp)
    assert found["facts"]["learns"][0] == pytest.approx(1.0, abs=0.1)
    build_tradeoff(paths, FAMILIES, LRS, "facts", ["triviaqa"], out,
                   {"level_step": 10.0, "n_resamples": 300})  # fmt: skip
    runs = pd.read_csv(out["runs_csv"], index_col="run")
    assert runs["seeds"].to_dict() == {"same": 2, "learns": 1, "noisy": 1}
    md = out["md"].read_text()
    assert "Seeds per run: 0, 1 (same); 0 (learns, noisy)." in md
    assert "Runs with one seed" in md
    assert "| noisy | 0 / 0, p 1 | – |" in md  # its churn has no seed 1
    assert "Seeds per run" in out["gold_md"].read_text()
