"""Answers lost and gained against the base model, with an exact McNemar test.

Counting only the base model's correct answers that a model loses (retention) mistakes churn for
forgetting: fragile correct answers flip under any change, and a model that also gets other
questions newly right has not simply forgotten. Both directions are counted on the same
questions, and the exact McNemar test asks whether losses outnumber gains by more than chance
(under no change, each discordant question is a loss or a gain with probability 1/2).
"""

from __future__ import annotations

from collections.abc import Mapping
from math import comb


def exact_mcnemar(lost: int, gained: int) -> float:
    """Two-sided exact McNemar p-value for `lost` vs `gained` discordant questions."""
    if lost < 0 or gained < 0:
        raise ValueError("exact_mcnemar: counts must be non-negative")
    n = lost + gained
    if n == 0:
        return 1.0
    k = min(lost, gained)
    tail = sum(comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def lost_gained(base: Mapping[str, float], model: Mapping[str, float]) -> dict:
    """Questions the base model got right and the model wrong (lost), and the reverse (gained),
    with the exact McNemar p-value; both dicts map question id -> 1.0 / 0.0."""
    if set(base) != set(model):
        raise ValueError("lost_gained: the model was scored on other questions than the base")
    lost = sum(1 for q in base if base[q] and not model[q])
    gained = sum(1 for q in base if not base[q] and model[q])
    kept = sum(1 for q in base if base[q] and model[q])
    return {"lost": lost, "gained": gained, "kept": kept,
            "base_correct": lost + kept, "p": exact_mcnemar(lost, gained)}  # fmt: skip
