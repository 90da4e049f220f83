"""Retention: how many of the questions the base model answered correctly a model still gets.

A small model knows few trivia answers (SmolLM2-135M: a handful in a thousand), so plain
TriviaQA accuracy barely moves whatever finetuning does to it. Retention asks only about the
questions the base model got right: the set is fixed once, from the base model's cached
answers, and every model (retrofit, every arm and seed) is scored on it from its own cached
answers. No model is loaded here.

Losses alone mistake churn for forgetting (fragile right answers flip under any change), so the
result also counts the other direction, questions the base model got wrong that the model gets
right (`gained_ids`), and the exact McNemar p of lost against gained (smf.report.churn).
"""

from __future__ import annotations

from smf.report.churn import exact_mcnemar

RETENTION_SUFFIX = "_retention"


def retained_set(base_result: dict) -> dict:
    """The ids of the questions the base model answered correctly, from its qa eval JSON."""
    probe = base_result.get("probe", "?")
    if base_result.get("kind") != "qa" or "answers" not in base_result:
        raise ValueError(
            f"retention needs the base model's per-question answers of a qa probe; probe "
            f"{probe!r} has kind {base_result.get('kind')!r} and no 'answers'"
        )
    ids = [a["id"] for a in base_result["answers"] if a["correct"]]
    if not ids:
        raise ValueError(
            f"probes.{probe}: the base model answers none of the {base_result['n']} questions "
            "correctly, so retention is undefined; use more questions or set retention: false"
        )
    return {
        "probe": probe,
        "protocol": base_result["protocol"],
        "questions": base_result["n"],
        "ids": ids,
    }


def retention_result(model_result: dict, retained: dict) -> dict:
    """The eval-result JSON of `{probe}_retention` for one model."""
    if model_result.get("protocol") != retained["protocol"]:
        raise ValueError(
            f"{model_result.get('model')}: probe {retained['probe']!r} was scored with protocol "
            f"{model_result.get('protocol')!r}, the retained set with {retained['protocol']!r}"
        )
    correct = {a["id"]: a["correct"] for a in model_result["answers"]}
    missing = [i for i in retained["ids"] if i not in correct]
    if missing:
        raise ValueError(
            f"{model_result.get('model')}: {len(missing)} retained question(s) were not "
            f"answered, e.g. {missing[:3]}; the probe's data changed since the set was fixed"
        )
    kept = [i for i in retained["ids"] if correct[i]]
    n = len(retained["ids"])
    # the other direction: questions the base model got wrong that this model gets right
    in_set = set(retained["ids"])
    gained = [i for i, ok in correct.items() if ok and i not in in_set]
    lost = n - len(kept)
    return {
        "metric": "accuracy",
        "value": len(kept) / n,
        "higher_is_better": True,
        "n": n,
        "protocol": retained["protocol"],
        "correct": len(kept),
        "questions": retained["questions"],
        "lost_ids": [i for i in retained["ids"] if not correct[i]],
        "gained_ids": gained,
        "base_wrong": len(correct) - n,
        "mcnemar_p": exact_mcnemar(lost, len(gained)),
        # per retained question, so the trade-off report resamples retention over questions
        "answers": [{"id": i, "correct": correct[i]} for i in retained["ids"]],
        "model": model_result["model"],
        "arm": model_result["arm"],
        "seed": model_result["seed"],
        "probe": retained["probe"] + RETENTION_SUFFIX,
        "kind": "qa",
    }
