"""The trade-off statistics on synthetic data with known answers (no model, no files):
reading forgetting only between bracketing runs, the seed-and-question bootstrap, paired
differences between arms, chance baselines and lost/gained answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from smf.report import bootstrap, chance, churn, comparisons
from smf.report.fronts import (
    Point,
    bracketed_forgetting,
    forgetting_of,
    level_grid,
    pareto_front,
    unbracketed_reason,
    with_origin,
)
from smf.report.intervals import bootstrap_mean, bootstrap_paired_difference, seed_spread

# ---- reading a level between real runs -------------------------------------------------------


def test_front_drops_dominated_runs_and_the_origin_is_an_option():
    runs = [Point(10, 5, "lr1"), Point(8, 7, "lr2"), Point(20, 9, "lr3"), Point(20, 12, "lr4")]
    assert [p.label for p in pareto_front(runs)] == ["lr1", "lr3"]
    assert [p.label for p in pareto_front(runs, anchor_origin=True)] == ["base", "lr1", "lr3"]


def test_interpolation_between_two_bracketing_runs():
    x, y = np.array([10.0, 20.0]), np.array([4.0, 10.0])
    assert bracketed_forgetting(x, y, 15)[0] == pytest.approx(7.0)
    assert bracketed_forgetting(x, y, 10)[0] == pytest.approx(4.0)
    assert bracketed_forgetting(x, y, 20)[0] == pytest.approx(10.0)


def test_a_level_outside_the_runs_is_never_extrapolated():
    # full finetuning in the demo: its lowest rate already learns +6 and loses 57 points
    x, y = np.array([6.0, 10.0, 60.7]), np.array([56.7, 74.0, 86.7])
    value, pair = bracketed_forgetting(x, y, 3.0)
    assert np.isnan(value) and pair == -1
    assert "every run learns more" in unbracketed_reason(list(x), 3.0)
    assert np.isnan(bracketed_forgetting(x, y, 70.0)[0])
    assert "no run reaches it" in unbracketed_reason(list(x), 70.0)
    # the origin line, when asked for, is what reads +3 (and only then)
    ox, oy = with_origin(x, y)
    assert bracketed_forgetting(ox, oy, 3.0)[0] == pytest.approx(56.7 / 2)


def test_a_gain_not_monotone_in_the_rate_takes_the_least_forgetting():
    # rate order: +4.7, +14.0, +6.0 (LoRA on the demo's facts): +8 is crossed twice
    x, y = np.array([4.7, 14.0, 6.0]), np.array([76.0, 85.3, 85.3])
    value, pair = bracketed_forgetting(x, y, 8.0)
    assert pair == 0 and value == pytest.approx(76.0 + (8.0 - 4.7) / (14.0 - 4.7) * 9.3)


def test_bracketing_is_vectorised_over_resamples():
    x = np.array([[1.0, 6.0], [9.0, 12.0]])  # (runs, B): resample 2 starts above the level
    y = np.array([[2.0, 2.0], [4.0, 4.0]])
    values, _ = bracketed_forgetting(x, y, 5.0)
    assert values[0] == pytest.approx(2.0 + 4 / 8 * 2.0) and np.isnan(values[1])


def test_level_grid_is_fixed_steps_up_to_the_largest_gain():
    assert level_grid([3.0, 21.0, 48.5], 10.0) == [10.0, 20.0, 30.0, 40.0]
    assert level_grid([-3.0, 4.0], 10.0) == []


def test_forgetting_orientation():
    assert forgetting_of(-3.0, higher_is_better=True) == 3.0  # accuracy fell by 3 points
    assert forgetting_of(2.5, higher_is_better=False) == 2.5  # perplexity rose by 2.5


# ---- the bootstrap over seeds and questions --------------------------------------------------

N_Q = 200
LEVEL = 20.0  # between the runs' gains (0 and +40 points), far from both


def _comparison(rng, forgetting_shift: dict[str, float], n_seeds=2, n_resamples=500, seed=0):
    """Two arms, two rates each; same per-question success probabilities unless shifted."""
    p_learn = rng.uniform(0.1, 0.6, N_Q)
    p_keep = rng.uniform(0.5, 0.95, N_Q)
    learn = comparisons.ProbeScores("learn", 100.0, True, (rng.random(N_Q) < p_learn) * 1.0)
    keep = comparisons.ProbeScores("keep", 100.0, True, (rng.random(N_Q) < p_keep) * 1.0)
    lrs, families = {}, {}
    for arm, shift in forgetting_shift.items():
        families[arm] = []
        for k, (gain, loss) in enumerate(((0.0, 0.10), (0.40, 0.30))):
            run = f"{arm}_{k}"
            families[arm].append(run)
            lrs[run] = float(k)
            pl = np.clip(p_learn + gain, 0, 1)
            pk = np.clip(p_keep - loss - shift, 0, 1)
            learn.runs[run] = (rng.random((n_seeds, N_Q)) < pl) * 1.0
            keep.runs[run] = (rng.random((n_seeds, N_Q)) < pk) * 1.0
    draws = bootstrap.make_draws(
        n_seeds, {"learn": N_Q, "keep": N_Q}, n_resamples=n_resamples, seed=seed
    )
    return comparisons.Comparison(
        families=families, lrs=lrs, learning_probe="learn", forgetting_probes=["keep"],
        seeds={run: list(range(n_seeds)) for run in lrs},
        settings=comparisons.Settings(level_step=LEVEL),
        learning=comparisons.effects(learn, draws, learning=True),
        forgetting={"keep": comparisons.effects(keep, draws, learning=False)},
        per_question={"learn": True, "keep": True},
    )  # fmt: skip


def _difference_at_level(cmp):
    _, diffs = comparisons.at_levels(cmp)
    rows = diffs[diffs["level"] == LEVEL]
    return rows.iloc[0] if len(rows) else None


def _coverage(n_seeds: int, repetitions: int) -> tuple[int, int]:
    covered, total = 0, 0
    for rep in range(repetitions):
        cmp = _comparison(np.random.default_rng(rep), {"a": 0.0, "b": 0.0}, n_seeds=n_seeds)
        d = _difference_at_level(cmp)
        if d is None or np.isnan(d["low"]):
            continue
        total += 1
        covered += d["low"] <= 0 <= d["high"]
    return covered, total


def test_identical_arms_cover_zero_in_about_95_percent_of_repetitions():
    # one seed: a bootstrap over questions, nominal (measured: 112 of 119, 94 %)
    covered, total = _coverage(n_seeds=1, repetitions=120)
    assert total >= 110  # the level is bracketed in nearly every repetition
    assert 0.88 <= covered / total <= 0.99
    # two seeds: drawing seeds and questions together counts the seed x question noise twice
    # (Owen 2007, the pigeonhole bootstrap), so it is conservative (measured: 120 of 120)
    covered, total = _coverage(n_seeds=2, repetitions=60)
    assert total >= 55 and covered / total >= 0.95


def test_arms_that_differ_by_a_known_amount_are_told_apart():
    d = _difference_at_level(_comparison(np.random.default_rng(7), {"a": 0.0, "b": 0.20}))
    assert d["high"] < 0  # a forgets 20 points less than b
    assert d["low"] <= -20 <= d["high"] or abs(d["value"] + 20) < 8
    assert d["excludes_zero"]


def test_disagreeing_seeds_widen_the_interval_compared_with_averaging_first():
    base = np.zeros(N_Q)
    # seed 0 gets the first half right, seed 1 the second: per question the mean is 0.5
    seeds = np.zeros((2, N_Q))
    seeds[0, : N_Q // 2] = 1
    seeds[1, N_Q // 2 :] = 1
    averaged = bootstrap_paired_difference(seeds.mean(axis=0), base)
    scores = comparisons.ProbeScores("p", 1.0, True, base, {"run": seeds})
    draws = bootstrap.make_draws(2, {"p": N_Q}, n_resamples=2000)
    _, rep = comparisons.effects(scores, draws, learning=True)["run"]
    low, high, share = bootstrap.percentile_interval(rep)
    assert share == 1.0
    assert averaged.half_width < 1e-12  # every question's seed mean is 0.5: no spread at all
    assert (high - low) / 2 > 0.05  # the seed draw (both seeds the same one) is kept


def test_runs_with_the_same_seeds_share_a_seed_draw_and_others_get_their_own():
    draws = bootstrap.make_draws([(0, 1), (0,), (0, 1)], {"p": 10}, n_resamples=50)
    assert sorted(draws.seeds) == [(0,), (0, 1)]
    assert draws.seed_weights([0]).shape == (50, 1) and draws.seed_weights((0, 1)).shape == (50, 2)
    assert np.all(draws.seed_weights([0]) == 1.0)  # one seed: nothing to resample
    # one list of seeds draws exactly what the number of seeds did
    listed = bootstrap.make_draws([(0, 1)], {"p": 10}, n_resamples=50)
    counted = bootstrap.make_draws(2, {"p": 10}, n_resamples=50)
    np.testing.assert_array_equal(listed.seed_weights([0, 1]), counted.seed_weights([0, 1]))
    np.testing.assert_array_equal(listed.questions["p"], counted.questions["p"])
    with pytest.raises(ValueError, match=r"no seed draw for seeds \[2\]"):
        draws.seed_weights([2])
    with pytest.raises(ValueError, match="at least one seed"):
        bootstrap.make_draws([()], {"p": 10})


def test_one_seed_resamples_questions_only():
    assert comparisons.resampled_over(True, 1) == "questions (1 seed)"
    assert comparisons.resampled_over(False, 2).startswith("seeds only")


def test_percentile_interval_reports_the_share_of_resamples_with_a_value():
    low, high, share = bootstrap.percentile_interval(np.array([1.0, 2.0, np.nan, 3.0]))
    assert share == 0.75 and low >= 1.0 and high <= 3.0


# ---- chance and churn ------------------------------------------------------------------------


def test_chance_of_a_known_small_answer_set():
    crafts = ["baker", "smith", "tailor", "potter", "weaver", "carpenter", "glazier", "cooper"]
    records = [
        {"question": f"What does Abe Name{i} work as?", "answer": crafts[i % 8],
         "aliases": [crafts[i % 8]]}
        for i in range(40)
    ] + [
        {"question": f"What is the home of Abe Name{i}?", "answer": f"Town{i}",
         "aliases": [f"Town{i}"]}
        for i in range(40)
    ]  # fmt: skip
    result = chance.qa_chance(records)
    # 40 trade questions from 8 words (1 in 8 by guessing), 40 open homes (0)
    assert result["chance"] == pytest.approx(0.5 * 1 / 8)
    assert result["closed_forms"] == {"What does work as?": 8}


def test_exact_mcnemar():
    assert churn.exact_mcnemar(0, 0) == 1.0
    assert churn.exact_mcnemar(6, 6) == 1.0
    assert churn.exact_mcnemar(10, 0) == pytest.approx(2 / 2**10)
    # 6 lost vs 10 gained: churn, far from significant
    assert churn.exact_mcnemar(6, 10) == pytest.approx(
        2 * sum(math.comb(16, i) for i in range(7)) / 2**16
    )


def test_churn_is_counted_per_run_and_seed():
    scores = comparisons.ProbeScores(
        "qa", 100.0, True, np.array([1.0, 1.0, 0.0, 0.0]),
        {"r": np.array([[0.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]])},
    )  # fmt: skip
    seeds = comparisons.churn_of(scores)["r"]
    assert [(c["lost"], c["gained"]) for c in seeds] == [(1, 2), (0, 0)]


def test_lost_and_gained_are_both_counted():
    base = {"a": 1.0, "b": 1.0, "c": 0.0, "d": 0.0}
    model = {"a": 0.0, "b": 1.0, "c": 1.0, "d": 1.0}
    out = churn.lost_gained(base, model)
    assert (out["lost"], out["gained"], out["kept"], out["base_correct"]) == (1, 2, 1, 2)


# ---- the older per-question bootstrap (smf.report.intervals) -------------------------------------


def test_bootstrap_interval_covers_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(1)
    small = rng.random(100) < 0.6
    large = rng.random(2500) < 0.6
    a, b = bootstrap_mean(small), bootstrap_mean(large)
    assert a.low <= a.value <= a.high and b.low <= b.value <= b.high
    assert a.half_width == pytest.approx(1.96 * math.sqrt(0.24 / 100), rel=0.25)
    assert b.half_width == pytest.approx(1.96 * math.sqrt(0.24 / 2500), rel=0.25)
    assert bootstrap_mean(small) == a  # seeded: deterministic


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="same questions"):
        bootstrap_paired_difference([1, 0], [1, 0, 1])
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_mean([])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap.percentile_interval(np.ones(3), confidence=1.5)


def test_seed_spread():
    assert seed_spread([0.5]) == {"mean": 0.5, "std": None, "n_seeds": 1}
    s = seed_spread([1.0, 3.0])
    assert s["mean"] == 2.0 and s["std"] == pytest.approx(math.sqrt(2))
