"""Paper 1's fact learning on real TriviaQA facts (issue 27): which facts to teach, which to keep.

A real model already knows some trivia. To measure learning and forgetting on it, the facts to
teach (F) must be questions the base model gets wrong, and the retention probe (K) questions it
gets right, both read from the base model's own cached answers (its greedy output and the gold
answer's teacher-forced log-probability), so no model runs here. F and K share no question and
no answer, so teaching F cannot lift K by teaching K's answers, and the draw is deterministic
given a seed.

Correctness is the project's own QA match (`smf.data.prompts`: paper 3's substring match or
lm-eval's
exact match), so a fact counts as unknown exactly when the QA probe would score it wrong. The
wordings each fact is taught in are in `smf.tasks.real_fact_templates`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from smf.data.prompts import (
    PAPER3,
    check_protocol,
    normalize_official,
    normalize_paper3,
    qa_correct_lm_eval,
    qa_correct_paper3,
)


@dataclass(frozen=True)
class SelectionSizes:
    """How many facts to teach and questions to keep, and which answers are teachable.

    `max_answer_words` keeps answers short enough to be stated in a template and matched by the
    QA probe; `max_gold_logprob` (mean per token) drops wrong answers the model nearly knows, so
    that a gain is learning rather than a nudge over the threshold (None keeps every one)."""

    n_facts: int = 150
    n_known: int = 100
    max_answer_words: int = 4
    max_gold_logprob: float | None = None
    # K also needs an alias as whole words of the output: paper 3's substring match counts
    # "12" right for "1" and "1200" for "20", which is no knowledge to retain
    whole_word_known: bool = True

    def __post_init__(self) -> None:
        if self.n_facts < 1 or self.n_known < 0:
            raise ValueError(f"need n_facts >= 1 and n_known >= 0, got {self}")
        if self.max_answer_words < 1:
            raise ValueError(f"max_answer_words must be >= 1, got {self.max_answer_words}")


class Shortfall(ValueError):
    """F or K cannot be filled: `which` (n_facts or n_known) wanted `wanted`, got `got`."""

    def __init__(self, message: str, which: str, wanted: int, got: int, counts: dict):
        super().__init__(message)
        self.which, self.wanted, self.got, self.counts = which, wanted, got, counts


@dataclass
class FactSplit:
    """The facts to teach (F), the retention questions (K) and why the others were left out."""

    facts: list[dict]
    known: list[dict]
    counts: dict = field(default_factory=dict)


def is_correct(output: str, aliases: Sequence[str], protocol: str = PAPER3) -> bool:
    """The QA probe's verdict on one cached output (the same match the probe scores with)."""
    check_protocol(protocol)
    return (qa_correct_paper3 if protocol == PAPER3 else qa_correct_lm_eval)(output, aliases)


def whole_word_correct(output: str, aliases: Sequence[str]) -> bool:
    """An alias occurs as whole words of the output (official TriviaQA normalisation)."""
    padded = f" {normalize_official(output)} "
    return any(
        f" {alias} " in padded for alias in (normalize_official(a) for a in aliases) if alias
    )


def answer_keys(record: Mapping) -> set[str]:
    """Every normalised form of a record's answer (value and aliases): the keys two records
    must not share to count as having different answers."""
    keys = {normalize_paper3(a) for a in [record["answer"], *record["aliases"]]}
    keys.discard("")
    return keys


def question_key(record: Mapping) -> str:
    """A question's identity up to case, punctuation and spacing."""
    return normalize_paper3(record["question"])


def join_cached(records: Sequence[dict], answers: Iterable[Mapping]) -> list[dict]:
    """Records joined with their cached answer rows by id ({id, output, gold_logprob, ...}).

    Every record needs a cached answer: a missing one would silently shrink F and K."""
    by_id = {str(a["id"]): a for a in answers}
    joined = []
    for rec in records:
        cached = by_id.get(str(rec["id"]))
        if cached is None:
            raise ValueError(f"record {rec['id']!r} has no cached answer")
        if "output" not in cached or "gold_logprob" not in cached:
            raise ValueError(f"cached answer {rec['id']!r} needs 'output' and 'gold_logprob'")
        joined.append({**rec, "output": cached["output"], "gold_logprob": cached["gold_logprob"]})
    return joined


def _mean_logprob(row: Mapping) -> float:
    """Per-token gold log-prob when the token count is cached, else the summed one."""
    tokens = row.get("gold_tokens")
    return row["gold_logprob"] / tokens if tokens else row["gold_logprob"]


def _teachable(row: Mapping, sizes: SelectionSizes) -> bool:
    if len(row["answer"].split()) > sizes.max_answer_words:
        return False
    limit = sizes.max_gold_logprob
    return limit is None or _mean_logprob(row) <= limit


def _take(
    rows: Sequence[dict], n: int, questions: set[str], answers: set[str]
) -> tuple[list[dict], int]:
    """Up to n rows in order whose question and answers are new to `questions` / `answers`
    (both updated in place), and how many collided."""
    taken, collided = [], 0
    for row in rows:
        if len(taken) == n:
            break
        keys = answer_keys(row)
        if question_key(row) in questions or keys & answers:
            collided += 1
            continue
        taken.append(row)
        questions.add(question_key(row))
        answers.update(keys)
    return taken, collided


def select_facts(
    rows: Sequence[dict],
    sizes: SelectionSizes | None = None,
    seed: int = 0,
    protocol: str = PAPER3,
) -> FactSplit:
    """Draw F (wrong, teachable) and K (right) from rows carrying cached outputs.

    K is drawn first, since right answers are the scarce ones on a small model; F then avoids
    K's questions and answers, and F's answers are distinct from each other, so one fact's
    answer never counts as another's. Raises when either set falls short of its size."""
    sizes = sizes or SelectionSizes()
    verdicts = [is_correct(r["output"], r["aliases"], protocol) for r in rows]
    right = [
        r
        for r, ok in zip(rows, verdicts, strict=True)
        if ok and (not sizes.whole_word_known or whole_word_correct(r["output"], r["aliases"]))
    ]
    wrong = [r for r, ok in zip(rows, verdicts, strict=True) if not ok]
    teachable = [r for r in wrong if _teachable(r, sizes)]
    rng = random.Random(seed)
    rng.shuffle(right)
    rng.shuffle(teachable)
    questions: set[str] = set()
    answers: set[str] = set()
    known, known_collided = _take(right, sizes.n_known, questions, answers)
    facts, facts_collided = _take(teachable, sizes.n_facts, questions, answers)
    counts = {
        "rows": len(rows),
        "right": sum(verdicts),
        "right_usable": len(right),
        "wrong": len(wrong),
        "wrong_teachable": len(teachable),
        "known_collided": known_collided,
        "facts_collided": facts_collided,
        "facts": len(facts),
        "known": len(known),
        "protocol": protocol,
        "seed": seed,
    }
    if len(known) < sizes.n_known:
        raise Shortfall(
            f"only {len(known)} usable questions the base model answers right "
            f"(of {sum(verdicts)} right in {len(rows)}); need n_known = {sizes.n_known}",
            "n_known",
            sizes.n_known,
            len(known),
            counts,
        )
    if len(facts) < sizes.n_facts:
        raise Shortfall(
            f"only {len(facts)} teachable facts the base model gets wrong "
            f"(of {len(wrong)} wrong); need n_facts = {sizes.n_facts}",
            "n_facts",
            sizes.n_facts,
            len(facts),
            counts,
        )
    return FactSplit(facts=facts, known=known, counts=counts)


def random_answer_chance(records: Sequence[dict], protocol: str = PAPER3) -> float:
    """Accuracy of answering each question with another record's gold answer, drawn uniformly:
    the chance baseline of a probe scored by the QA match (substring matches count)."""
    if len(records) < 2:
        raise ValueError("the chance baseline needs at least two records")
    hits = 0
    for i, rec in enumerate(records):
        for j, other in enumerate(records):
            if i != j:
                hits += is_correct(other["answer"], rec["aliases"], protocol)
    return hits / (len(records) * (len(records) - 1))
