"""The wordings a real TriviaQA fact is taught and tested in, written by templates (no LLM).

Paper 1 teaches each fact as one batch of paraphrases and tests it with a question the model was
not trained on. Without an LLM the paraphrases are templates around the fact's own question and
answer: question/answer frames, statements (answer first and answer last) and the model's chat
template. One question/answer frame is held out of every training text for every fact: asked in
it, the fact is the learning probe. Another, taught, frame is asked as recall, reported apart.

The probes are ordinary `qa` records scored by the project's QA probe, whose prompt is
`Question: {question}\\nAnswer:` (paper 3). A frame is therefore an *inner* question string: the
held-out default `plain` is the bare question, i.e. the standard TriviaQA prompt that K is also
scored with; `quiz` and `trivia` put words before and after it, so that no training text has
the held-out prompt's "Question: {q}" nor its "{q}\\nAnswer:" (`held_out_leaks`). Output uses
the schemas of `smf.tasks.facts`: `{"text", "fact"}` training rows grouped by fact, TriviaQA
rc.nocontext eval records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from smf.data.prompts import qa_prompt
from smf.demo.datasets import trivia_record, write_jsonl_atomic
from smf.demo.world import Fact

REAL_FACT_FILES = {
    "facts_train": "facts_train.jsonl",
    "facts_eval": "facts_eval.jsonl",
    "facts_taught": "facts_taught.jsonl",
    "known_eval": "known_eval.jsonl",
}
REAL_FACT_SOURCE = "real_facts"

# Question/answer frames: the inner question string the QA probe wraps in "Question: ...".
FRAMES: dict[str, Callable[[str], str]] = {
    "plain": lambda q: q,
    "quiz": lambda q: f"Quiz question: {q} (short answer)",
    "trivia": lambda q: f"Here is a trivia question. {q} Reply briefly.",
}
# SmolLM2-Instruct's chat template (ChatML with its default system prompt, as
# `apply_chat_template` writes one user turn and the reply), written out so that building the
# task needs no tokenizer; a model with another template passes its own.
CHATML = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n{a}<|im_end|>\n"
)
# Other training wordings, each a full text from the question q and answer a.
STATEMENTS: dict[str, str] = {
    "qa_short": "Q: {q}\nA: {a}",
    "answer_first": "{a} is the answer to: {q}",
    "answer_last": 'The answer to the question "{q}" is {a}.',
    "question_line": "{q}\n{a}",
    "chat": CHATML,
}
DEFAULT_TRAINED = ("quiz", "trivia", "qa_short", "answer_first", "answer_last", "chat")
DEFAULT_HELD_OUT = "plain"
DEFAULT_TAUGHT = "quiz"


def check_wordings(trained: Sequence[str], held_out: str, taught: str) -> None:
    """Reject a design the probes cannot read: the held-out frame trained, the taught frame
    not trained, unknown names, or fewer than 6 wordings (issue 27's minimum)."""
    known = set(FRAMES) | set(STATEMENTS)
    unknown = [w for w in (*trained, held_out, taught) if w not in known]
    if unknown:
        raise ValueError(f"unknown wordings {unknown}; choose from {sorted(known)}")
    if held_out not in FRAMES or taught not in FRAMES:
        raise ValueError("held_out and taught must be question/answer frames: " + str(FRAMES))
    if held_out in trained:
        raise ValueError(f"the held-out frame {held_out!r} is among the trained wordings")
    if taught not in trained:
        raise ValueError(f"the taught frame {taught!r} is not among the trained wordings")
    if len(set(trained)) != len(trained) or len(trained) < 6:
        raise ValueError(f"need at least 6 distinct trained wordings, got {list(trained)}")


def training_text(wording: str, question: str, answer: str, chat: str = CHATML) -> str:
    """One training text: a frame's prompt followed by the answer, or a statement."""
    if wording in FRAMES:
        return f"{qa_prompt(FRAMES[wording](question))} {answer}"
    template = chat if wording == "chat" else STATEMENTS[wording]
    return template.format(q=question, a=answer)


def fact_texts(
    record: dict, trained: Sequence[str] = DEFAULT_TRAINED, chat: str = CHATML
) -> list[str]:
    """The training texts teaching one fact, one per trained wording, in wording order."""
    return [training_text(w, record["question"], record["answer"], chat) for w in trained]


def probe_record(record: dict, frame: str, index: int) -> dict:
    """A fact asked in `frame`, as a TriviaQA rc.nocontext record with the fact's aliases."""
    fact = Fact(record["question"], "trivia", record["answer"], tuple(record["aliases"]))
    return trivia_record(
        FRAMES[frame](record["question"]), f"fact_{index}", fact, REAL_FACT_SOURCE, "FreeForm"
    )


def known_record(record: dict) -> dict:
    """A K question asked in the standard prompt, keeping its source id."""
    fact = Fact(record["question"], "trivia", record["answer"], tuple(record["aliases"]))
    return trivia_record(
        record["question"], str(record["id"]), fact, REAL_FACT_SOURCE, "WikipediaEntity"
    )


def build_task(
    facts: Sequence[dict],
    known: Sequence[dict],
    trained: Sequence[str] = DEFAULT_TRAINED,
    held_out: str = DEFAULT_HELD_OUT,
    taught: str = DEFAULT_TAUGHT,
    chat: str = CHATML,
) -> dict[str, list[dict]]:
    """Every file's rows: training texts grouped by fact, the held-out and taught probes, K."""
    check_wordings(trained, held_out, taught)
    train = [
        {"text": text, "fact": i}
        for i, rec in enumerate(facts)
        for text in fact_texts(rec, trained, chat)
    ]
    return {
        "facts_train": train,
        "facts_eval": [probe_record(rec, held_out, i) for i, rec in enumerate(facts)],
        "facts_taught": [probe_record(rec, taught, i) for i, rec in enumerate(facts)],
        "known_eval": [known_record(rec) for rec in known],
    }


def held_out_pieces(question: str) -> tuple[str, str]:
    """The two halves of a held-out prompt that no training text may contain: the frame's
    opening up to the question's end, and the question's end with the answer cue."""
    prompt = qa_prompt(question)
    cut = prompt.index(question) + len(question)
    return prompt[:cut], prompt[prompt.index(question) :]


def held_out_leaks(rows: dict[str, list[dict]]) -> list[str]:
    """Training texts containing either half of any held-out prompt (should be none)."""
    pieces = [p for r in rows["facts_eval"] for p in held_out_pieces(r["question"])]
    return [row["text"] for row in rows["facts_train"] if any(p in row["text"] for p in pieces)]


def write_real_fact_task(out_dir: str | Path, rows: dict[str, list[dict]]) -> dict[str, Path]:
    """Write REAL_FACT_FILES into `out_dir` after checking no held-out prompt leaked."""
    leaks = held_out_leaks(rows)
    if leaks:
        raise ValueError(f"{len(leaks)} training texts contain a held-out prompt: {leaks[0]!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / file for name, file in REAL_FACT_FILES.items()}
    for name, path in paths.items():
        write_jsonl_atomic(path, rows[name])
    return paths
