"""Pareto fronts, matched learning and bootstrap intervals (pure arithmetic, no model)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from smf.intervals import bootstrap_mean, bootstrap_paired_difference, seed_spread
from smf.tradeoff import (
    Point,
    forgetting_at,
    forgetting_at_matched_learning,
    forgetting_of,
    matched_level,
    pareto_front,
)


def test_front_drops_dominated_runs_and_keeps_the_origin():
    runs = [Point(10, 5, "lr1"), Point(8, 7, "lr2"), Point(20, 9, "lr3"), Point(20, 12, "lr4")]
    front = pareto_front(runs)
    assert [p.label for p in front] == ["base", "lr1", "lr3"]


def test_front_without_anchor_and_a_run_that_beats_the_origin():
    # learns and improves the forgetting probe: it beats "do nothing", which still anchors the
    # front, so a lower level is read between the two (demo sweep: full at lr 3e-4 learned
    # +11.5 points and lowered WikiText perplexity; +1 point was then "not reached")
    front = pareto_front([Point(5, -1, "a")])
    assert [p.label for p in front] == ["base", "a"]
    assert forgetting_at(front, 2.5) == pytest.approx(-0.5)
    assert [p.label for p in pareto_front([Point(5, 2, "a")], anchor_origin=False)] == ["a"]


def test_interpolation_on_the_front():
    front = pareto_front([Point(10, 4), Point(20, 10)])
    assert forgetting_at(front, 0) == 0
    assert forgetting_at(front, 5) == pytest.approx(2.0)
    assert forgetting_at(front, 15) == pytest.approx(7.0)
    assert forgetting_at(front, 20) == pytest.approx(10.0)
    assert forgetting_at(front, 21) is None  # never reached: no extrapolation


def test_matched_level_is_the_highest_gain_every_arm_reaches():
    fronts = {
        "full": pareto_front([Point(30, 20), Point(40, 35)]),
        "smf": pareto_front([Point(12, 1), Point(25, 3)]),
    }
    assert matched_level(fronts) == 25
    level, forgetting = forgetting_at_matched_learning(fronts)
    assert level == 25
    assert forgetting["smf"] == pytest.approx(3.0)
    assert forgetting["full"] == pytest.approx(25 * 20 / 30)


def test_no_matched_level_when_an_arm_never_learns():
    fronts = {"a": pareto_front([Point(-2, 1)]), "b": pareto_front([Point(10, 1)])}
    assert matched_level(fronts) is None
    assert forgetting_at_matched_learning(fronts) == (None, {"a": None, "b": None})


def test_forgetting_orientation():
    assert forgetting_of(-3.0, higher_is_better=True) == 3.0  # accuracy fell by 3 points
    assert forgetting_of(2.5, higher_is_better=False) == 2.5  # perplexity rose by 2.5


def test_bootstrap_interval_covers_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(1)
    small = rng.random(100) < 0.6
    large = rng.random(2500) < 0.6
    a, b = bootstrap_mean(small), bootstrap_mean(large)
    assert a.low <= a.value <= a.high and b.low <= b.value <= b.high
    # binomial half-width ~ 1.96 * sqrt(p(1-p)/n): 0.096 at n=100, 0.019 at n=2500
    assert a.half_width == pytest.approx(1.96 * math.sqrt(0.24 / 100), rel=0.25)
    assert b.half_width == pytest.approx(1.96 * math.sqrt(0.24 / 2500), rel=0.25)
    assert bootstrap_mean(small) == a  # seeded: deterministic


def test_paired_difference_is_tighter_than_unpaired_when_scores_correlate():
    rng = np.random.default_rng(2)
    base = (rng.random(400) < 0.5).astype(float)
    model = base.copy()
    flip = rng.choice(400, size=40, replace=False)
    model[flip] = 1.0  # the model gets 40 more (or the same) questions right
    gain = bootstrap_paired_difference(model, base)
    assert gain.value == pytest.approx(model.mean() - base.mean())
    assert gain.low > 0  # a real gain is distinguishable from zero when paired
    unpaired = bootstrap_mean(model).half_width + bootstrap_mean(base).half_width
    assert gain.half_width < unpaired / 2


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="same questions"):
        bootstrap_paired_difference([1, 0], [1, 0, 1])
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_mean([])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_mean([1, 0], confidence=1.5)


def test_seed_spread():
    assert seed_spread([0.5]) == {"mean": 0.5, "std": None, "n_seeds": 1}
    s = seed_spread([1.0, 3.0])
    assert s["mean"] == 2.0 and s["std"] == pytest.approx(math.sqrt(2))
