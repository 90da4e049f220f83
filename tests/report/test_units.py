"""Perplexity resampled over its windows (or pages) and seeds (smf.report.units and the ratio
estimator in smf.report.bootstrap), on synthetic eval JSONs with known per-window losses."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from smf.report import bootstrap, comparisons, paper_tables, tradeoff_tables, units

N_WINDOWS = 120
N_QUESTIONS = 100
LEVEL = 20.0
SETTINGS = comparisons.Settings(level_step=LEVEL, n_resamples=600)
TOKENS = np.full(N_WINDOWS, 512.0)
# per-token loss of each window: some windows are much harder than others
HARDNESS = np.random.default_rng(0).uniform(1.5, 3.5, N_WINDOWS)


def _write(root: Path, arm: str, seed: int | None, probe: str, record: dict) -> str:
    model = arm if seed is None else f"{arm}-seed{seed}"
    kind, metric, higher = (
        ("perplexity", "perplexity", False) if probe == "wikitext" else
        ("multiple_choice", "accuracy", True)
    )  # fmt: skip
    record = {"model": model, "arm": arm, "seed": seed, "probe": probe, "kind": kind,
              "protocol": "paper3", "metric": metric, "higher_is_better": higher,
              "n": N_QUESTIONS} | record  # fmt: skip
    path = root / model / f"{probe}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return str(path)


def _ppl(root, arm, seed, lift, rng, noise=0.02, windows=True, value=None) -> str:
    """Per-window losses HARDNESS x (1 + lift + noise); `value` defaults to their ratio."""
    factor = 1.0 + lift + (rng.normal(0, noise, N_WINDOWS) if noise else 0.0)
    nll = TOKENS * HARDNESS * factor
    record = {"value": math.exp(nll.sum() / TOKENS.sum()) if value is None else value}
    if windows:
        record |= {"window_nll": nll.tolist(), "window_tokens": TOKENS.astype(int).tolist()}
    return _write(root, arm, seed, "wikitext", record)


def _mcq(root, arm, seed, right: int) -> str:
    answers = [{"id": f"q{i}", "correct": i < right} for i in range(N_QUESTIONS)]
    return _write(root, arm, seed, "medmcqa", {"value": right / N_QUESTIONS, "answers": answers})


def _evals(root: Path, shift: dict[str, float], n_seeds: int, windows=True) -> list[str]:
    """Base and, per arm, two rates: +0 and +40 points learned, perplexity lifted by 2 % and
    5 % (+ the arm's shift) per window, with independent noise per run, seed and window."""
    rng = np.random.default_rng(1)
    paths = [_mcq(root, "base", None, 30), _ppl(root, "base", None, 0.0, rng, noise=0)]
    for arm, extra in shift.items():
        for k, (right, lift) in enumerate(((30, 0.02), (70, 0.05 + extra))):
            for seed in range(n_seeds):
                paths += [_mcq(root, f"{arm}_{k}", seed, right),
                          _ppl(root, f"{arm}_{k}", seed, lift, rng, windows=windows)]  # fmt: skip
    return paths


def _compare(paths, arms):
    df = paper_tables.load_eval_results(paths)
    families = {arm: [f"{arm}_0", f"{arm}_1"] for arm in arms}
    lrs = {f"{arm}_{k}": float(k) for arm in arms for k in (0, 1)}
    return comparisons.compare(df, families, lrs, "medmcqa", ["wikitext"], SETTINGS)


def _difference(cmp):
    _, diffs = comparisons.at_levels(cmp)
    return diffs[diffs["level"] == LEVEL].iloc[0]


def test_windows_widen_the_one_seed_interval_that_seeds_only_leaves_empty(tmp_path):
    with_units = _compare(_evals(tmp_path / "u", {"a": 0.0}, 1), ["a"])
    seeds_only = _compare(_evals(tmp_path / "s", {"a": 0.0}, 1, windows=False), ["a"])
    assert with_units.units == {"wikitext": "windows"} and seeds_only.units == {}
    _, rep_units = with_units.forgetting["wikitext"]["a_1"]
    _, rep_seeds = seeds_only.forgetting["wikitext"]["a_1"]
    assert np.ptp(rep_seeds) < 1e-9  # one seed, one number per model: nothing to resample
    low, high, share = bootstrap.percentile_interval(rep_units)
    assert share == 1.0 and high - low > 0.05
    runs_u = comparisons.runs_table(with_units).loc["a_1"]
    runs_s = comparisons.runs_table(seeds_only).loc["a_1"]
    assert runs_u["wikitext_forgetting_low"] < runs_u["wikitext_forgetting_high"]
    assert np.isnan(runs_s["wikitext_forgetting_low"])  # the fallback: no interval, as before
    assert comparisons.resampled_over(False, 1, "windows") == "windows (1 seed)"


def test_the_point_value_is_the_json_value(tmp_path):
    rng = np.random.default_rng(5)
    paths = [_mcq(tmp_path, "base", None, 30), _ppl(tmp_path, "base", None, 0.0, rng, value=12.0)]
    paths += [_mcq(tmp_path, "a", s, 60) for s in (0, 1)]
    paths += [_ppl(tmp_path, "a", s, 0.05, rng, value=v) for s, v in ((0, 13.0), (1, 14.5))]
    df = paper_tables.load_eval_results(paths)
    cmp = comparisons.compare(df, {"a": ["a"]}, {"a": 1.0}, "medmcqa", ["wikitext"], SETTINGS)
    assert cmp.units == {"wikitext": "windows"}
    assert cmp.forgetting["wikitext"]["a"][0] == pytest.approx(13.75 - 12.0, abs=1e-12)


def test_identical_arms_cover_zero_and_a_known_shift_is_told_apart(tmp_path):
    same = _difference(_compare(_evals(tmp_path / "same", {"a": 0.0, "b": 0.0}, 2), ["a", "b"]))
    assert same["low"] <= 0 <= same["high"] and not same["excludes_zero"]
    # b's per-window losses are 5 % higher at the high rate: it forgets more at +20
    shifted = _compare(_evals(tmp_path / "shift", {"a": 0.0, "b": 0.05}, 2), ["a", "b"])
    d = _difference(shifted)
    assert d["high"] < 0 and d["excludes_zero"]
    assert d["low"] <= d["value"] <= d["high"]


def test_the_tables_say_what_is_resampled(tmp_path):
    cmp = _compare(_evals(tmp_path, {"a": 0.0}, 1), ["a"])
    levels, diffs = comparisons.at_levels(cmp)
    out = {k: tmp_path / f"t.{k}" for k in ("csv", "runs_csv", "differences_csv", "md")}
    tradeoff_tables.write_tradeoff_tables(cmp, comparisons.runs_table(cmp), levels, diffs, out, {})
    md = out["md"].read_text()
    assert "WikiText: resampled over windows (1 seed)" in md
    assert "over questions and windows only" in md
    assert "no per-page losses cached" not in md


def test_a_file_without_windows_falls_back_to_seeds_only(tmp_path):
    paths = _evals(tmp_path, {"a": 0.0}, 2)
    record = json.loads(Path(paths[1]).read_text())  # the base model's perplexity
    del record["window_nll"], record["window_tokens"]
    Path(paths[1]).write_text(json.dumps(record))
    cmp = _compare(paths, ["a"])
    assert cmp.units == {}
    assert tradeoff_tables._over(cmp, "wikitext") == "seeds only (no per-page losses cached)"


def test_other_texts_are_an_error_and_pages_are_read(tmp_path):
    paths = _evals(tmp_path, {"a": 0.0}, 1)
    record = json.loads(Path(paths[-1]).read_text())
    record["window_nll"], record["window_tokens"] = [1.0, 2.0], [3, 4]
    Path(paths[-1]).write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"wikitext.*a_1.*2 windows.*120 windows"):
        _compare(paths, ["a"])
    page = tmp_path / "page.json"
    page.write_text(json.dumps({"page_nll": [10.0, 20.0], "page_words": [4, 6]}))
    assert units.read_units(str(page)) == ("pages", [10.0, 20.0], [4, 6])


def test_the_ratio_estimator_weights_units_then_seeds():
    nll = np.array([[2.0, 6.0], [4.0, 4.0]])  # (seeds, units)
    count = np.array([[1.0, 3.0], [2.0, 2.0]])
    unit_w = np.array([[1.0, 0.0], [0.5, 0.5]])
    seed_w = np.array([[1.0, 0.0], [0.5, 0.5]])
    got = bootstrap.run_ratios(nll, count, seed_w, unit_w)
    assert got[0] == pytest.approx(math.exp(2.0))  # seed 0, unit 0 only
    assert got[1] == pytest.approx((math.exp(8 / 4) + math.exp(8 / 4)) / 2)
    assert bootstrap.base_ratios(nll[0], count[0], unit_w)[1] == pytest.approx(math.exp(2.0))
