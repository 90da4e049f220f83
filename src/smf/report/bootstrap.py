"""A bootstrap over seeds and questions together, shared by every arm of a comparison.

A run's score is a mean over seeds of a mean over questions. Two sources of noise enter it:
which questions were asked and which seeds were drawn. Averaging the seeds per question first
and then resampling questions (the old report) drops the second, so two disagreeing seeds gave
a *narrower* interval than one. Here each resample draws seeds and questions with replacement
(a two-level bootstrap) and every run's score is the weighted mean under those draws.

The draws are made once per comparison and applied to every arm and to the base model: a
difference between two arms (or a run and the base model) is then paired on questions, and on
seeds where both runs have the same seeds, which removes the variance they share. Draws are
stored as weights (counts / size), so a run's resampled scores are two matrix products, fast
enough for report jobs that must rebuild from cache in seconds.

Perplexity is resampled over its scoring units (paper3's sliding windows, lm_eval's pages)
together with seeds, when every eval JSON of the comparison keeps per-unit losses
(smf.report.units). It is a ratio, exp(summed loss / tokens or words), so a resample is a ratio
estimator: per seed, exp(sum_i w_i nll_i / sum_i w_i n_i) under the shared unit weights w,
then combined over seeds with the seed weights as any per-seed value is (`run_ratios`). Older
caches keep one number per model; such a probe is resampled over seeds only and the tables say
so. With one seed the seed draw is degenerate and the interval is over questions (or units)
only; the tables say that too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from smf.report.intervals import CONFIDENCE, N_RESAMPLES, SEED


@dataclass(frozen=True)
class Draws:
    """Resampling weights: per seed list that runs were trained with, `seeds[list]` (B, s), and,
    per probe with per-question scores or per-unit losses, `questions[probe]` (B, n) over its
    questions or units. Each row sums to 1. Runs with the same seeds share one seed draw (paired
    on seeds too); runs with different seeds (two at an arm's own rate, one at its sweep points)
    share only the question draws."""

    seeds: dict[tuple[int, ...], np.ndarray]
    questions: dict[str, np.ndarray]

    @property
    def n_resamples(self) -> int:
        return int(next(iter(self.seeds.values())).shape[0])

    def seed_weights(self, seeds: Sequence[int]) -> np.ndarray:
        """(B, s): the seed draw of runs trained with these seeds."""
        key = tuple(int(s) for s in seeds)
        if key not in self.seeds:
            raise ValueError(f"no seed draw for seeds {list(key)} (have {list(self.seeds)})")
        return self.seeds[key]


def resample_weights(n: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(n_resamples, n): how often each of n items is drawn in n draws with replacement, / n."""
    if n < 1:
        raise ValueError("resample_weights: need at least one item")
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples) / n


def make_draws(
    seed_lists: int | Sequence[Sequence[int]],
    question_counts: dict[str, int],
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
    unit_counts: dict[str, int] | None = None,
) -> Draws:
    """One set of draws for a whole comparison (every arm, run and probe shares it).
    `seed_lists`: the runs' seed lists (an int n: every run has seeds 0 .. n-1). Seeds are drawn
    first, one draw per distinct list, then questions; units (perplexity windows or pages) last,
    so keeping them changes no question draw."""
    if isinstance(seed_lists, int):
        seed_lists = [range(seed_lists)]
    keys = sorted({tuple(int(s) for s in seeds) for seeds in seed_lists})
    if not keys or not all(keys):
        raise ValueError("make_draws: every run needs at least one seed")
    rng = np.random.default_rng(seed)
    seeds = {key: resample_weights(len(key), n_resamples, rng) for key in keys}
    questions = {
        probe: resample_weights(n, n_resamples, rng) for probe, n in sorted(question_counts.items())
    }
    for probe, n in sorted((unit_counts or {}).items()):
        if probe in questions:
            raise ValueError(f"make_draws: probe {probe!r} has both questions and units")
        questions[probe] = resample_weights(n, n_resamples, rng)
    return Draws(seeds, questions)


def run_scores(scores: np.ndarray, seed_weights: np.ndarray, question_weights: np.ndarray | None):
    """Resampled mean scores of one run, shape (B,).

    `scores` is (s, n) per seed and question, or (s,) one value per seed (no questions: then
    `question_weights` must be None)."""
    arr = np.asarray(scores, dtype=np.float64)
    if arr.shape[0] != seed_weights.shape[1]:
        raise ValueError(f"run_scores: {arr.shape[0]} seeds, draws have {seed_weights.shape[1]}")
    if arr.ndim == 1:
        return seed_weights @ arr
    if question_weights is None or arr.shape[1] != question_weights.shape[1]:
        raise ValueError("run_scores: per-question scores need question draws of the same size")
    return ((seed_weights @ arr) * question_weights).sum(axis=1)


def base_scores(scores: np.ndarray, question_weights: np.ndarray | None, n_resamples: int):
    """Resampled mean score of the base model (one model, no seed draw), shape (B,)."""
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(n_resamples, float(arr))
    if question_weights is None or arr.shape[0] != question_weights.shape[1]:
        raise ValueError("base_scores: per-question scores need question draws of the same size")
    return question_weights @ arr


def ratios(nll: np.ndarray, count: np.ndarray, unit_weights: np.ndarray) -> np.ndarray:
    """(B, f): exp(sum_i w_i nll_fi / sum_i w_i count_fi) per resample and file, from (f, n)
    summed losses and tokens (or words) per unit; a resample whose weighted count is 0 is NaN."""
    nll, count = np.atleast_2d(nll).astype(np.float64), np.atleast_2d(count).astype(np.float64)
    if nll.shape != count.shape or nll.shape[1] != unit_weights.shape[1]:
        raise ValueError("ratios: losses, counts and unit draws must have the same units")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.exp((unit_weights @ nll.T) / (unit_weights @ count.T))


def run_ratios(nll, count, seed_weights: np.ndarray, unit_weights: np.ndarray) -> np.ndarray:
    """Resampled perplexity of one run, shape (B,): per seed the ratio under the unit draw, then
    weighted by the seed draw (as `run_scores` weights per-seed values)."""
    per_seed = ratios(nll, count, unit_weights)
    if per_seed.shape[1] != seed_weights.shape[1]:
        n_draw = seed_weights.shape[1]
        raise ValueError(f"run_ratios: {per_seed.shape[1]} seeds, draws have {n_draw}")
    return (seed_weights * per_seed).sum(axis=1)


def base_ratios(nll, count, unit_weights: np.ndarray) -> np.ndarray:
    """Resampled perplexity of the base model (no seed draw; several files are averaged, as its
    point value is), shape (B,)."""
    return ratios(nll, count, unit_weights).mean(axis=1)


def percentile_interval(
    replicates: np.ndarray, confidence: float = CONFIDENCE
) -> tuple[float, float, float]:
    """(low, high, share): the percentile interval of the finite replicates and the share of
    replicates that are finite (a resample where a level is not bracketed is NaN)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rep = np.asarray(replicates, dtype=np.float64)
    ok = rep[np.isfinite(rep)]
    share = ok.size / rep.size if rep.size else 0.0
    if ok.size == 0:
        return float("nan"), float("nan"), share
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(ok, [tail, 100 - tail])
    return float(low), float(high), share


def excludes_zero(low: float, high: float) -> bool:
    """Whether an interval lies entirely on one side of zero."""
    return bool(low > 0 or high < 0)


def seed_matrix(per_seed: Sequence[dict[str, float]], ids: Sequence[str]) -> np.ndarray:
    """(s, n) scores from one {question id: score} dict per seed, in the order of `ids`."""
    missing = [i for i, scores in enumerate(per_seed) if set(scores) != set(ids)]
    if missing:
        raise ValueError(f"seed file(s) {missing}: their questions differ from the base model's")
    return np.array([[scores[q] for q in ids] for scores in per_seed], dtype=np.float64)
