"""Every text format of the project in one place: training text, eval prompts, answer matching.

Two evaluation protocols exist (see docs/method.md, "Evaluation protocols"):
- "paper3": what paper 3's released evaluation code does (the default everywhere);
- "lm_eval": what lm-evaluation-harness does, the numbers most readers compare against.
Pure functions only (no torch), so data preparation and training can import them cheaply.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Sequence

LETTERS = "ABCD"
PAPER3 = "paper3"
LM_EVAL = "lm_eval"
PROTOCOLS = (PAPER3, LM_EVAL)
MCQ_HEADER = "Medical exam question:"

# lm-eval's triviaqa task stops generation at the first of these strings.
LM_EVAL_QA_STOPS = ("\n", ".", ",")
# Paper 3 keeps only these characters when normalising TriviaQA answers.
_PAPER3_DROP_CHARS = re.compile(r"[^a-z0-9 .-]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
# The official TriviaQA evaluation also treats typographic quotes and accents as punctuation.
_OFFICIAL_PUNCTUATION = frozenset(string.punctuation + "\u2018\u2019\u00b4`")
_ASCII_PUNCTUATION_TABLE = str.maketrans("", "", string.punctuation)
# The raw WikiText files write a blank line as a single space; the HF rows turn it into "".
WIKITEXT_BLANK_LINE = " \n"


def check_protocol(protocol: str) -> None:
    """Reject an unknown protocol name early, with the valid choices in the message."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")


# ---------------------------------------------------------------------------------------------
# Multiple choice (MedMCQA)
# ---------------------------------------------------------------------------------------------


def _record_name(rec: dict) -> str:
    return f"record id={rec.get('id', '?')!r}"


def _check_mcq(rec: dict) -> None:
    """Validate the multiple_choice schema fields the formats need."""
    for field in ("question", "options", "answer"):
        if field not in rec:
            raise ValueError(f"multiple_choice {_record_name(rec)}: missing field {field!r}")
    options = rec["options"]
    if not isinstance(options, list | tuple) or len(options) != len(LETTERS):
        raise ValueError(
            f"multiple_choice {_record_name(rec)}: field 'options' must be a list of "
            f"{len(LETTERS)} strings, got {options!r}"
        )
    answer = rec["answer"]
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(LETTERS):
        raise ValueError(
            f"multiple_choice {_record_name(rec)}: field 'answer' must be an int in "
            f"0..{len(LETTERS) - 1}, got {answer!r}"
        )


def _mcq_paper3_prompt(rec: dict, header: str) -> str:
    lines = [header, f"Question: {rec['question']}"]
    lines += [f"{letter}. {option}" for letter, option in zip(LETTERS, rec["options"], strict=True)]
    lines.append("Answer:")
    return "\n".join(lines)


def mcq_training_text(rec: dict, header: str = MCQ_HEADER) -> str:
    """Paper 3's training text: the question, the options, the gold answer, the explanation."""
    _check_mcq(rec)
    if "explanation" not in rec:
        raise ValueError(f"multiple_choice {_record_name(rec)}: missing field 'explanation'")
    gold = rec["answer"]
    text = f"{_mcq_paper3_prompt(rec, header)} {LETTERS[gold]}. {rec['options'][gold]}"
    explanation = rec["explanation"].strip()
    if explanation:
        text += f"\nExplanation: {explanation}"
    return text


def mcq_prompt(rec: dict, protocol: str = PAPER3, header: str = MCQ_HEADER) -> str:
    """The context every option is scored after (ends with "Answer:", no trailing space)."""
    check_protocol(protocol)
    _check_mcq(rec)
    if protocol == PAPER3:
        return _mcq_paper3_prompt(rec, header)
    lines = [f"Question: {rec['question']}", "Choices:"]
    lines += [f"{letter}. {option}" for letter, option in zip(LETTERS, rec["options"], strict=True)]
    lines.append("Answer:")
    return "\n".join(lines)


def mcq_continuations(rec: dict, protocol: str = PAPER3) -> list[str]:
    """The four scored continuations: " {L}. {option}" (paper3) or " {L}" (lm_eval)."""
    check_protocol(protocol)
    _check_mcq(rec)
    if protocol == PAPER3:
        return [
            f" {letter}. {option}" for letter, option in zip(LETTERS, rec["options"], strict=True)
        ]
    return [f" {letter}" for letter in LETTERS]


# ---------------------------------------------------------------------------------------------
# Question answering (TriviaQA)
# ---------------------------------------------------------------------------------------------


def qa_prompt(question: str, protocol: str = PAPER3) -> str:
    """Paper 3 uses the question as is; lm-eval appends "?" (so most prompts end in "??")."""
    check_protocol(protocol)
    if protocol == PAPER3:
        return f"Question: {question}\nAnswer:"
    return f"Question: {question}?\nAnswer:"


def normalize_paper3(s: str) -> str:
    """Paper 3's answer normalisation (keeps "." and "-", unlike the official one)."""
    s = s.lower()
    s = _ARTICLES.sub(" ", s)
    s = _PAPER3_DROP_CHARS.sub(" ", s)
    return " ".join(s.split())


def normalize_official(s: str) -> str:
    """The official TriviaQA normalisation (mandarjoshi90/triviaqa evaluation script)."""
    s = s.replace("_", " ").lower()
    s = "".join(" " if ch in _OFFICIAL_PUNCTUATION else ch for ch in s)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def qa_correct_paper3(output: str, aliases: Sequence[str]) -> bool:
    """Correct if any normalised alias occurs inside the normalised generated text."""
    normalized_output = normalize_paper3(output)
    for alias in aliases:
        normalized_alias = normalize_paper3(alias)
        if normalized_alias and normalized_alias in normalized_output:
            return True
    return False


def truncate_at_stops(output: str, stops: Sequence[str] = LM_EVAL_QA_STOPS) -> str:
    """Cut the generation at the first stop string, as lm-eval's `until` does."""
    for stop in stops:
        output = output.split(stop)[0]
    return output


def _lm_eval_exact_match_form(s: str) -> str:
    return s.lower().translate(_ASCII_PUNCTUATION_TABLE)


def qa_correct_lm_eval(output: str, aliases: Sequence[str]) -> bool:
    """lm-eval triviaqa: cut at stops, strip whitespace at both ends (its `remove_whitespace`
    filter), exact match ignoring case and ASCII punctuation against any raw alias."""
    prediction = _lm_eval_exact_match_form(truncate_at_stops(output).strip())
    return any(prediction == _lm_eval_exact_match_form(alias) for alias in aliases)


# ---------------------------------------------------------------------------------------------
# WikiText
# ---------------------------------------------------------------------------------------------


def wikitext_paper3_text(rows: Sequence[str], limit: int | None = 1000) -> str:
    """Paper 3's perplexity string: stripped non-empty rows, the first `limit`, joined by a
    blank line. `limit=None` keeps all rows."""
    kept = [row.strip() for row in rows if row.strip()]
    if limit is not None:
        kept = kept[:limit]
    return "\n\n".join(kept)


def sha256_text(text: str) -> str:
    """Fingerprint of an evaluated string, stored in results so protocol drift is visible."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _is_page_heading(line: str) -> bool:
    """A top-level "= Title =" line; "= = Section = =" lines are collapsed first so they fail."""
    collapsed = line.replace("= = =", "===").replace("= =", "==").strip()
    return collapsed.startswith("= ") and collapsed.endswith(" =")


def wikitext_documents(rows: Sequence[str]) -> list[str]:
    """Split raw WikiText rows into pages like EleutherAI/wikitext_document_level.

    `rows` are the HF rows of a raw config ("" for a blank line, otherwise ending in "\\n") or,
    equally, the lines of the raw file read with their line ends. The rows are joined back into
    the raw file, split on "\\n", and a new page starts at every top-level heading line; pages
    are joined with "\\n" and pages of only whitespace are dropped.
    """
    parts = []
    for index, row in enumerate(rows):
        if row == "":
            parts.append(WIKITEXT_BLANK_LINE)
        elif row.endswith("\n"):
            parts.append(row)
        else:
            raise ValueError(
                f"wikitext row {index}: a non-empty raw row must end with a newline, got "
                f"{row[-40:]!r} (pass the unstripped HF rows or file lines with keepends)"
            )
    lines = "".join(parts).split("\n")

    pages: list[str] = []
    current: list[str] = []
    for line in lines:
        if _is_page_heading(line):
            page = "\n".join(current)
            if page.strip():
                pages.append(page)
            current = []
        current.append(line)
    page = "\n".join(current)
    if page.strip():
        pages.append(page)
    return pages


# Plain replacements of lm-eval's wikitext detokenizer, applied in this order. The regex rules
# for brackets and quotes run between the punctuation group and the heading group.
_DETOKENIZE_BEFORE_BRACKETS = (
    ("s '", "s'"),  # plural possessive
    (" @-@ ", "-"),  # number and word separators
    (" @,@ ", ","),
    (" @.@ ", "."),
    (" : ", ": "),
    (" ; ", "; "),
    (" . ", ". "),
    (" ! ", "! "),
    (" ? ", "? "),
    (" , ", ", "),
)
_DETOKENIZE_BRACKETS = (
    (re.compile(r"\(\s*([^\)]*?)\s*\)"), r"(\1)"),
    (re.compile(r"\[\s*([^\]]*?)\s*\]"), r"[\1]"),
    (re.compile(r"{\s*([^}]*?)\s*}"), r"{\1}"),
    (re.compile(r"\"\s*([^\"]*?)\s*\""), r'"\1"'),
    (re.compile(r"'\s*([^']*?)\s*'"), r"'\1'"),
)
_DETOKENIZE_AFTER_BRACKETS = (
    ("= = = =", "===="),  # section heading markers
    ("= = =", "==="),
    ("= =", "=="),
    (" \u00b0 ", "\u00b0"),  # degree sign
    (" \n", "\n"),
    ("\n ", "\n"),
    (" N ", " 1 "),
    (" 's", "'s"),
)


def wikitext_detokenize(s: str) -> str:
    """Undo WikiText's tokenisation spacing, following lm-eval's wikitext detokenizer.

    lm-eval also applies a regex that only matches a literal "/' <digit>/" (a no-op in
    practice; it never matches the WikiText-2 test pages); it is left out here.
    """
    for old, new in _DETOKENIZE_BEFORE_BRACKETS:
        s = s.replace(old, new)
    for pattern, replacement in _DETOKENIZE_BRACKETS:
        s = pattern.sub(replacement, s)
    for old, new in _DETOKENIZE_AFTER_BRACKETS:
        s = s.replace(old, new)
    return s


def count_words(page: str) -> int:
    """lm-eval's word count for word perplexity: measured on the original (tokenised) page."""
    return len(re.split(r"\s+", page))
