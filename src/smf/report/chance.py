"""What guessing scores on a probe: chance baselines for small answer sets.

A QA probe whose answers come from a small set inflates gains: the demo's trade questions
("What does X work as?") are answered from 8 words and scored by substring, so a model that
learned only *which words are trades* answers 1 in 8 of them. A gain is worth something only
above what such a guesser gets.

The guesser knows each question's form (its wording with the names taken out) and the answers
that form takes, but not which answer belongs to which subject: it names one of the form's
distinct answers at random. A form whose answers never repeat (every TriviaQA question, the
demo's invented homes and pets) is an open set: the only way to name its answer is to know it,
so its chance is 0. Multiple-choice probes: one over the number of options.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

# a capitalised word after the first one: a name (person, place), removed to get the form
_NAME = re.compile(r"(?<=\s)[A-Z][\w'-]*")
_SPACES = re.compile(r"\s+")


def question_form(question: str) -> str:
    """The question with names (capitalised words after the first) removed."""
    return _SPACES.sub(" ", _NAME.sub("", question)).strip()


def _norm(text: str) -> str:
    return _SPACES.sub(" ", text.lower()).strip()


def qa_chance(records: Sequence[Mapping]) -> dict:
    """Expected accuracy (0–1) of naming, per question, one of its form's distinct answers at
    random (chance 0 for forms whose answers never repeat); also the closed forms' sizes."""
    if not records:
        raise ValueError("qa_chance: no records")
    forms: dict[str, list[Mapping]] = defaultdict(list)
    for rec in records:
        forms[question_form(rec["question"])].append(rec)
    total, closed = 0.0, {}
    for form, recs in forms.items():
        answers = {_norm(r["answer"]) for r in recs}
        if len(answers) == len(recs):
            continue  # open: no answer repeats
        closed[form] = len(answers)
        for rec in recs:
            aliases = {_norm(a) for a in rec.get("aliases") or [rec["answer"]]}
            # substring scoring (paper3) credits a guess that contains an alias
            hits = sum(any(alias in a for alias in aliases) for a in answers)
            total += hits / len(answers)
    return {"chance": total / len(records), "closed_forms": closed, "n": len(records)}


def mcq_chance(result: Mapping) -> float:
    """One over the number of options of a multiple-choice eval JSON (its `predictions`)."""
    return 1.0 / len(result["predictions"])


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def probe_chance(
    kind: str, data_path: str | Path | None, eval_paths: Iterable[str | Path]
) -> float | None:
    """A probe's chance baseline (0–1), or None for probes without one (perplexity)."""
    if kind == "qa" and data_path is not None:
        return qa_chance(read_jsonl(data_path))["chance"]
    if kind == "multiple_choice":
        first = next(iter(eval_paths), None)
        if first is not None:
            result = json.loads(Path(first).read_text(encoding="utf-8"))
            if "predictions" in result:
                return mcq_chance(result)
    return None
