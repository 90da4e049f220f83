"""Learning vs forgetting across a learning-rate sweep: reading forgetting at a learning level.

Paper 1 compares arms *at equal learning*: a method that forgets less only because it learned
less has not won anything. Each arm is run at several learning rates; every run is a point
(learning gain, forgetting), both measured against the base model.

An arm's forgetting at a learning level is read **only between two of its real runs that
bracket the level**: the runs, in learning-rate order, form the path the arm takes as its rate
grows, and the level is interpolated linearly between two rate-neighbours whose gains lie on
either side of it. An arm none of whose rate-neighbours bracket the level gets no value and a
reason; it is never extrapolated. On the demo, full finetuning at its lowest rate learns +6
points on the fact task and already loses 57 TriviaQA points, so a straight line from the base
model to that run would understate its forgetting at any lower level: the line from the origin
(a learning rate of zero is the base model) is therefore an explicit option, off by default,
and a value read on it is labelled.

Every function here is vectorised over bootstrap resamples: learning and forgetting are arrays
(runs, B) and the result has one value per resample (NaN where the level is not bracketed).

Forgetting is oriented so that larger is worse: an accuracy drop in points, or a perplexity
increase. `forgetting_of` turns a probe's change into that orientation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

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


def pareto_front(points: Sequence[Point], *, anchor_origin: bool = False) -> list[Point]:
    """The non-dominated runs, sorted by learning (ties: less forgetting first). With
    `anchor_origin` the base model (0, 0) joins the candidates and always stays (the explicit,
    labelled origin option; off by default). The figure draws it; values are read with
    `bracketed_forgetting`."""
    origin = Point(0.0, 0.0, ORIGIN_LABEL)
    candidates = [*points, origin] if anchor_origin else list(points)
    if not candidates:
        raise ValueError("pareto_front: no points")
    front = [p for p in candidates if p is origin or not any(_dominates(q, p) for q in candidates)]
    unique = {(p.learning, p.forgetting): p for p in sorted(front, key=_order)}
    return sorted(unique.values(), key=_order)


def _order(p: Point) -> tuple[float, float]:
    return (p.learning, p.forgetting)


def with_origin(learning: np.ndarray, forgetting: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Prepend the base model (learning 0, forgetting 0) as the lowest-rate 'run'."""
    zeros = np.zeros((1, *np.shape(learning)[1:]))
    return np.concatenate([zeros, learning]), np.concatenate([zeros, forgetting])


def bracketed_forgetting(
    learning: np.ndarray, forgetting: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray]:
    """Forgetting at `level`, interpolated between rate-neighbouring runs that bracket it.

    `learning` and `forgetting` are (runs, ...) with runs in learning-rate order; the result has
    the trailing shape (one value per resample) and NaN where no pair brackets the level. When
    several pairs do (an arm whose gain is not monotone in its rate), the least forgetting is
    taken: the best the arm reaches at that level among its real runs. Also returns the index
    of the pair used (-1 where none)."""
    x = np.asarray(learning, dtype=np.float64)
    y = np.asarray(forgetting, dtype=np.float64)
    if x.shape != y.shape or x.shape[0] < 1:
        raise ValueError("bracketed_forgetting: learning and forgetting need the same (runs, ...)")
    if x.shape[0] == 1:  # one run brackets only its own gain
        hit = x[0] == level
        return np.where(hit, y[0], np.nan), np.where(hit, 0, -1)
    x0, x1, y0, y1 = x[:-1], x[1:], y[:-1], y[1:]
    inside = (np.minimum(x0, x1) <= level) & (level <= np.maximum(x0, x1))
    span = x1 - x0
    flat = span == 0
    t = np.divide(level - x0, span, out=np.zeros_like(span), where=~flat)
    values = np.where(flat, np.minimum(y0, y1), y0 + t * (y1 - y0))
    values = np.where(inside, values, np.inf)
    best = values.min(axis=0)
    pair = np.where(np.isfinite(best), values.argmin(axis=0), -1)
    return np.where(np.isfinite(best), best, np.nan), pair


def unbracketed_reason(learning: Sequence[float], level: float) -> str:
    """Why an arm's runs (point estimates) give no value at `level`."""
    low, high = min(learning), max(learning)
    if high < level:
        return f"no run reaches it (best {high:+.1f})"
    if low > level:
        return f"every run learns more (least {low:+.1f}); not extrapolated"
    return "no two rate-neighbouring runs bracket it"


def level_grid(gains: Sequence[float], step: float) -> list[float]:
    """step, 2·step, … up to the largest gain any run reached: a fixed grid of levels, not one
    level chosen from the arms' noisy best gains."""
    if step <= 0:
        raise ValueError(f"level step must be positive, got {step}")
    top = max(gains, default=0.0)
    return [step * k for k in range(1, int(np.floor(top / step)) + 1)]
