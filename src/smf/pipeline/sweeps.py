"""Learning-rate sweeps: each extra learning rate of an arm is an arm of its own.

Paper 1 compares methods at equal learning, which takes several learning rates per method.
An arm that lists `lr_sweep: [a, b]` keeps its own run (at its `train.lr`) and gains one arm
per extra rate, `<arm>_lr<rate>` (rate in Python's `g` format: `smf_kl_lr0.003`), a copy of the
arm with only `train.lr` changed (and without the arm's own `seeds`, if it lists any: sweep points
train with the top-level seeds). Each is an ordinary arm to the DAG (its own run, evaluation
and cache), so adding a rate trains one more branch and touches nothing already computed. The
arm and its sweep points form a *family*: one Pareto front in the trade-off report.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence

SWEEP_KEY = "lr_sweep"
SEEDS_KEY = "seeds"  # an arm's own run's seeds; its sweep points keep the top-level ones


def sweep_arm_name(arm: str, lr: float) -> str:
    return f"{arm}_lr{lr:g}"


def expand_sweeps(arms: Mapping[str, dict]) -> dict[str, dict]:
    """`arms` with every sweep point added right after its arm (and `lr_sweep` removed)."""
    out: dict[str, dict] = {}
    for arm, spec in arms.items():
        rates = list(spec.get(SWEEP_KEY) or [])
        base = {k: v for k, v in spec.items() if k != SWEEP_KEY}
        out[arm] = base
        own = base["train"]["lr"]
        for lr in rates:
            if lr == own or rates.count(lr) > 1:
                raise ValueError(
                    f"arms.{arm}.{SWEEP_KEY}: {lr:g} is listed twice (or is the arm's own "
                    "train.lr); every rate must be a distinct run"
                )
            name = sweep_arm_name(arm, lr)
            if name in arms:
                raise ValueError(
                    f"arms.{arm}.{SWEEP_KEY}: sweep point {name!r} clashes with an arm of "
                    "that name; rename the arm"
                )
            point = copy.deepcopy(base)
            point["train"]["lr"] = lr
            point.pop(SEEDS_KEY, None)  # the arm's own seeds are its own run's
            out[name] = point
    return out


def families(arms: Mapping[str, dict], run_arms: Sequence[str]) -> dict[str, list[str]]:
    """{arm: [arm, its sweep points...]} for the arms a run trains (before expansion)."""
    return {
        arm: [arm] + [sweep_arm_name(arm, lr) for lr in arms[arm].get(SWEEP_KEY) or []]
        for arm in run_arms
    }


def check_rates(arms: Mapping[str, dict], key: str = "arms") -> None:
    """Raise ValueError (first line `<key>.<arm>...: cause`) for a NaN or infinite rate, or two
    sweep rates whose names collide: `{lr:g}` keeps 6 significant digits, so 1.0e-3 and
    1.0000001e-3 would both be `<arm>_lr0.001` and one run would silently replace the other."""
    for arm, spec in arms.items():
        rates = list(spec.get(SWEEP_KEY) or [])
        own = spec.get("train", {}).get("lr")
        named = [("train.lr", own)] if own is not None else []
        named += [(f"{SWEEP_KEY}[{i}]", lr) for i, lr in enumerate(rates)]
        for where, lr in named:
            if isinstance(lr, (int, float)) and not math.isfinite(lr):
                raise ValueError(
                    f"{key}.{arm}.{where}: {lr} is not a finite learning rate (YAML .nan / .inf)"
                )
        seen: dict[str, float] = {}
        for lr in rates:
            name = sweep_arm_name(arm, lr)
            if name in seen and seen[name] != lr:
                raise ValueError(
                    f"{key}.{arm}.{SWEEP_KEY}: rates {seen[name]!r} and {lr!r} both map to the "
                    f"arm name {name!r} (6 significant digits), so one run would replace the "
                    "other; use rates that differ within 6 significant digits"
                )
            seen[name] = lr
