"""Learning vs forgetting across a learning-rate sweep: Pareto fronts and matched learning.

Paper 1 compares arms *at equal learning*: a method that forgets less only because it learned
less has not won anything. Each arm is run at several learning rates; every run is a point
(learning gain, forgetting), both measured against the base model. An arm's Pareto front is
the set of its runs that no other run of the same arm beats on both axes. Its forgetting at a
given learning level is read off the front by linear interpolation; the front is anchored at
the origin, because a learning rate of zero is the base model itself (no gain, no forgetting).

Forgetting is oriented so that larger is worse: an accuracy drop in points, or a perplexity
increase. `forgetting_of` turns a probe's change into that orientation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

ORIGIN_LABEL = "base"


@dataclass(frozen=True)
class Point:
    """One run (or the mean over seeds of one learning rate): gain and forgetting vs base."""

    learning: float
    forgetting: float
    label: str = ""


def forgetting_of(delta: float, higher_is_better: bool) -> float:
    """A probe's change vs base, turned into 'forgetting' (positive = worse than base)."""
    return -delta if higher_is_better else delta


def _dominates(a: Point, b: Point) -> bool:
    """a learns at least as much and forgets no more than b, and is strictly better once."""
    no_worse = a.learning >= b.learning and a.forgetting <= b.forgetting
    better = a.learning > b.learning or a.forgetting < b.forgetting
    return no_worse and better


def pareto_front(points: Sequence[Point], *, anchor_origin: bool = True) -> list[Point]:
    """The non-dominated points, sorted by learning (ties: less forgetting first).

    With `anchor_origin`, the base model (0, 0) joins the candidates and always stays: a
    learning rate of zero is always reachable, so an arm whose runs all forget more than they
    learn still has a front that starts at "do nothing", and a level below an arm's first run
    is read between the origin and that run, also when the run beats the base model on both
    axes (it learns and improves the forgetting probe).
    """
    origin = Point(0.0, 0.0, ORIGIN_LABEL)
    candidates = [*points, origin] if anchor_origin else list(points)
    if not candidates:
        raise ValueError("pareto_front: no points")
    front = [p for p in candidates if p is origin or not any(_dominates(q, p) for q in candidates)]
    unique = {(p.learning, p.forgetting): p for p in sorted(front, key=_order)}
    return sorted(unique.values(), key=_order)


def _order(p: Point) -> tuple[float, float]:
    return (p.learning, p.forgetting)


def forgetting_at(front: Sequence[Point], level: float) -> float | None:
    """Forgetting at learning `level`, interpolated linearly along the front.

    None when the front never reaches `level` (or starts above it): the arm did not learn that
    much at any tried learning rate, and extrapolating would invent a measurement.
    """
    pts = sorted(front, key=_order)
    if not pts:
        raise ValueError("forgetting_at: empty front")
    if level < pts[0].learning or level > pts[-1].learning:
        return None
    for left, right in zip(pts, pts[1:], strict=False):
        if left.learning <= level <= right.learning:
            if right.learning == left.learning:
                return min(left.forgetting, right.forgetting)
            t = (level - left.learning) / (right.learning - left.learning)
            return left.forgetting + t * (right.forgetting - left.forgetting)
    return pts[0].forgetting  # a one-point front at exactly `level`


def matched_level(fronts: Mapping[str, Sequence[Point]]) -> float | None:
    """The highest learning gain that every arm's front reaches (None if some arm never gains)."""
    if not fronts:
        raise ValueError("matched_level: no fronts")
    level = min(max(p.learning for p in front) for front in fronts.values())
    return level if level > 0 else None


def forgetting_at_matched_learning(
    fronts: Mapping[str, Sequence[Point]], level: float | None = None
) -> tuple[float | None, dict[str, float | None]]:
    """(level, {arm: forgetting at level}); `level` defaults to `matched_level(fronts)`."""
    if level is None:
        level = matched_level(fronts)
    if level is None:
        return None, {arm: None for arm in fronts}
    return level, {arm: forgetting_at(front, level) for arm, front in fronts.items()}
