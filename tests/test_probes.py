"""Probes on a tiny random Qwen2: windowing, scoring against brute force, batch invariance."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from conftest import make_tiny_qwen2

from smf.probes import (
    continuation_logprobs,
    generate_answers,
    mean_nll,
    multiple_choice_accuracy,
    perplexity,
    qa_accuracy,
    rolling_windows,
    sliding_windows,
    text_windows,
)
from smf.prompts import (
    LETTERS,
    count_words,
    mcq_continuations,
    mcq_prompt,
    qa_correct_paper3,
    qa_prompt,
    wikitext_detokenize,
    wikitext_paper3_text,
)

REQUIRED_KEYS = {"metric", "value", "higher_is_better", "n", "protocol"}
# A larger init than the default 0.02 makes the random model's outputs depend on its input,
# so argmax predictions and greedy generations differ between examples.
VARIED_INIT = 0.2
SENTENCE = " Robert Boulter is an English film , television and theatre actor .\n"
WIKI_ROWS = ["", " = Robert Boulter = \n", "", SENTENCE, " He had a guest @-@ starring role .\n"]
QUESTIONS = [
    "Who was the man behind The Chipmunks?",
    "What star sign is Jamie Lee Curtis?",
    "Which vitamin is fat soluble?",
    "Who?",
    "Which Lloyd Webber musical premiered in the US on 10th December 1993?",
]


class ConstantLM(torch.nn.Module):
    """Ignores its input: every position gets the same logits, strongly favouring one token."""

    def __init__(self, vocab_size: int, favoured: int, margin: float = 10.0) -> None:
        super().__init__()
        bias = torch.zeros(vocab_size)
        bias[favoured] = margin
        self.bias = torch.nn.Parameter(bias)

    def forward(self, input_ids: torch.Tensor, **kwargs) -> SimpleNamespace:
        return SimpleNamespace(logits=self.bias.expand(*input_ids.shape, -1))


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _mcq_records(options_per_record: list[list[str]], answers: list[int]) -> list[dict]:
    return [
        {"id": f"q{i}", "question": f"Question number {i}?", "options": options, "answer": answer}
        for i, (options, answer) in enumerate(zip(options_per_record, answers, strict=True))
    ]


def test_tiny_model_covers_tokenizer(tiny_qwen2, tokenizer) -> None:
    assert len(tokenizer) <= tiny_qwen2.config.vocab_size


# ---------------------------------------------------------------------------------------------
# Windows
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "max_length", "stride"), [(2, 8, 4), (10, 8, 4), (37, 8, 3), (37, 8, 8), (100, 16, 5)]
)
def test_sliding_windows_score_every_token_but_the_first_once(
    n: int, max_length: int, stride: int
) -> None:
    windows = sliding_windows(list(range(n)), max_length, stride)
    scored = [t for tokens, n_scored in windows for t in tokens[-n_scored:]]
    assert scored == list(range(1, n))
    assert all(len(tokens) <= max_length for tokens, _ in windows)


@pytest.mark.parametrize(("n", "max_length"), [(1, 8), (8, 8), (9, 8), (30, 8), (30, 1)])
def test_rolling_windows_score_every_token_once(n: int, max_length: int) -> None:
    ids = list(range(100, 100 + n))
    windows = rolling_windows(ids, prefix_token=7, max_length=max_length)
    assert windows[0][0][0] == 7
    scored = [t for tokens, n_scored in windows for t in tokens[-n_scored:]]
    assert scored == ids
    # The model reads tokens[:-1]: never more than max_length tokens.
    assert all(len(tokens) - 1 <= max_length for tokens, _ in windows)


def test_sliding_windows_reject_bad_arguments() -> None:
    with pytest.raises(ValueError, match="stride"):
        sliding_windows(list(range(10)), max_length=4, stride=5)
    with pytest.raises(ValueError, match="2 tokens"):
        sliding_windows([1], max_length=4, stride=2)


# ---------------------------------------------------------------------------------------------
# Perplexity
# ---------------------------------------------------------------------------------------------


def test_random_model_perplexity_is_near_vocab_size(tiny_qwen2, tokenizer) -> None:
    result = perplexity(tiny_qwen2, tokenizer, WIKI_ROWS * 5, max_length=64, stride=32)
    assert result.keys() >= REQUIRED_KEYS
    assert result["metric"] == "perplexity" and result["higher_is_better"] is False
    assert math.isfinite(result["value"])
    vocab = tiny_qwen2.config.vocab_size
    assert vocab / 4 < result["value"] < vocab * 4


def test_single_window_perplexity_equals_exp_mean_loss(tiny_qwen2, tokenizer) -> None:
    ids = _ids(tokenizer, SENTENCE.strip())
    assert len(ids) < 128
    result = perplexity(tiny_qwen2, tokenizer, [SENTENCE], max_length=128, stride=128)
    input_ids = torch.tensor([ids])
    loss = tiny_qwen2(input_ids=input_ids, labels=input_ids).loss.item()
    assert result["tokens_scored"] == len(ids) - 1
    assert result["value"] == pytest.approx(math.exp(loss), rel=1e-5)


def test_mean_nll_of_text_windows_is_the_token_weighted_hf_loss(tiny_qwen2, tokenizer) -> None:
    texts = [SENTENCE.strip(), "Answer: C. D"]
    windows = text_windows(tokenizer, texts, max_length=6)
    assert [len(ids) for ids, _ in windows] == [6, min(6, len(_ids(tokenizer, texts[1])))]
    losses, counts = [], []
    for ids, _ in windows:
        input_ids = torch.tensor([ids])
        losses.append(tiny_qwen2(input_ids=input_ids, labels=input_ids).loss.item())
        counts.append(len(ids) - 1)
    expected = sum(loss * n for loss, n in zip(losses, counts, strict=True)) / sum(counts)
    assert mean_nll(tiny_qwen2, windows, batch_size=2) == pytest.approx(expected, rel=1e-5)


def test_sliding_window_perplexity_matches_hf_guide_recipe(tiny_qwen2, tokenizer) -> None:
    rows = WIKI_ROWS * 3
    max_length, stride = 24, 10
    result = perplexity(tiny_qwen2, tokenizer, rows, max_length=max_length, stride=stride)

    ids = torch.tensor([_ids(tokenizer, wikitext_paper3_text(rows))])
    n = ids.shape[1]
    assert n > 3 * max_length
    assert result["tokens_scored"] == n - 1
    # The HF perplexity guide: labels of already-scored tokens are masked with -100.
    total_nll, total_tokens, prev_end = 0.0, 0, 0
    for begin in range(0, n, stride):
        end = min(begin + max_length, n)
        window = ids[:, begin:end]
        labels = window.clone()
        labels[:, : -(end - prev_end)] = -100
        n_loss_tokens = int((labels[:, 1:] != -100).sum())
        total_nll += tiny_qwen2(input_ids=window, labels=labels).loss.item() * n_loss_tokens
        total_tokens += n_loss_tokens
        prev_end = end
        if end == n:
            break
    assert total_tokens == n - 1
    assert result["nll_per_token"] == pytest.approx(total_nll / total_tokens, rel=1e-5)


def test_lm_eval_perplexity_is_word_level_over_detokenized_pages(tiny_qwen2, tokenizer) -> None:
    rows = WIKI_ROWS + [" = Du Fu = \n", "", " Du Fu ( 712 – 770 ) was a poet .\n"]
    # The leading blank line is a whitespace-only page and is dropped.
    pages = [
        " = Robert Boulter = \n \n" + SENTENCE + rows[4].rstrip("\n"),
        " = Du Fu = \n \n Du Fu ( 712 – 770 ) was a poet .\n",
    ]
    result = perplexity(tiny_qwen2, tokenizer, rows, protocol="lm_eval", max_length=256)
    assert result.keys() >= REQUIRED_KEYS
    assert result["n"] == len(pages)

    total_nll, words = 0.0, 0
    for page in pages:
        # One window per page: the first token is predicted from the EOS token (no BOS here).
        ids = [tokenizer.eos_token_id] + _ids(tokenizer, wikitext_detokenize(page))
        input_ids = torch.tensor([ids])
        total_nll += tiny_qwen2(input_ids=input_ids, labels=input_ids).loss.item() * (len(ids) - 1)
        words += count_words(page)
    assert result["words"] == words
    assert result["value"] == result["word_perplexity"]
    assert result["word_perplexity"] == pytest.approx(math.exp(total_nll / words), rel=1e-5)
    assert result["bits_per_byte"] == pytest.approx(math.log2(result["byte_perplexity"]))


# ---------------------------------------------------------------------------------------------
# Multiple choice
# ---------------------------------------------------------------------------------------------


def test_continuation_logprobs_match_unbatched_brute_force(tokenizer) -> None:
    model = make_tiny_qwen2(initializer_range=VARIED_INIT)
    requests = [
        ("Question: Who?\nAnswer:", " David Seville"),
        ("Medical exam question:\nQuestion: Which vitamin?\nAnswer:", " C. D"),
        ("A", " much longer continuation with several tokens"),
    ]
    scored = continuation_logprobs(model, tokenizer, requests, batch_size=3)
    for (context, continuation), (total, n_tokens) in zip(requests, scored, strict=True):
        context_ids, continuation_ids = _ids(tokenizer, context), _ids(tokenizer, continuation)
        input_ids = torch.tensor([context_ids + continuation_ids])
        log_probs = model(input_ids=input_ids).logits[0].log_softmax(-1)
        expected = sum(
            log_probs[len(context_ids) + i - 1, token].item()
            for i, token in enumerate(continuation_ids)
        )
        assert n_tokens == len(continuation_ids)
        assert total == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("protocol", ["paper3", "lm_eval"])
def test_mcq_predictions_match_per_example_brute_force(tokenizer, protocol: str) -> None:
    model = make_tiny_qwen2(initializer_range=VARIED_INIT)
    option_sets = [
        ["C", "B1", "D", "B12"],
        ["Cryptosporidium hominis", "Isospora", "Giardia", "E. coli"],
        ["Zinc", "Iron", "a very long option about vitamins", "Lead"],
        ["1", "2", "3", "4"],
        ["yes", "no", "maybe", "never"],
        ["Robert", "Boulter", "actor", "film"],
    ]
    records = _mcq_records(option_sets, answers=[0, 1, 2, 3, 0, 1])
    result = multiple_choice_accuracy(model, tokenizer, records, protocol=protocol, batch_size=4)

    expected_predictions = []
    for rec in records:
        prompt_ids = _ids(tokenizer, mcq_prompt(rec, protocol))
        scores = []
        for continuation in mcq_continuations(rec, protocol):
            continuation_ids = _ids(tokenizer, continuation)
            log_probs = model(input_ids=torch.tensor([prompt_ids + continuation_ids])).logits[0]
            log_probs = log_probs.log_softmax(-1)
            token_scores = [
                log_probs[len(prompt_ids) + i - 1, token].item()
                for i, token in enumerate(continuation_ids)
            ]
            total = sum(token_scores)
            scores.append(total / len(token_scores) if protocol == "paper3" else total)
        ranked = sorted(scores, reverse=True)
        assert ranked[0] - ranked[1] > 1e-4, "near tie: the comparison would be fragile"
        expected_predictions.append(scores.index(ranked[0]))

    expected_correct = sum(
        p == rec["answer"] for p, rec in zip(expected_predictions, records, strict=True)
    )
    assert result["correct"] == expected_correct
    assert result["value"] == pytest.approx(expected_correct / len(records))
    assert result["predictions"] == {
        letter: expected_predictions.count(i) for i, letter in enumerate(LETTERS)
    }
    assert result["always_A_baseline"] == pytest.approx(2 / 6)
    assert result.keys() >= REQUIRED_KEYS
    if protocol == "lm_eval":
        # All " A".." D" continuations have the same byte length, so acc_norm equals acc.
        assert result["acc_norm"] == result["value"]


def test_mcq_follows_a_model_that_prefers_the_gold_option_text(tokenizer) -> None:
    favoured = _ids(tokenizer, "Z")[-1]
    answers = [0, 1, 2, 3, 2, 2]
    option_sets = []
    for answer in answers:
        options = ["Iron", "Copper", "Lead", "Tin"]
        options[answer] = "Zinc"
        option_sets.append(options)
    records = _mcq_records(option_sets, answers)
    for continuation in mcq_continuations(records[0]):
        assert (favoured in _ids(tokenizer, continuation)) == ("Zinc" in continuation)
    model = ConstantLM(len(tokenizer), favoured)
    result = multiple_choice_accuracy(model, tokenizer, records, batch_size=4)
    assert result["value"] == 1.0
    assert result["predictions"] == {"A": 1, "B": 1, "C": 3, "D": 1}


def test_lm_eval_mcq_follows_a_model_that_prefers_one_letter(tokenizer) -> None:
    letter_ids = [_ids(tokenizer, f" {letter}") for letter in LETTERS]
    favoured = letter_ids[2][-1]
    assert all(favoured not in ids for i, ids in enumerate(letter_ids) if i != 2)
    records = _mcq_records([["w", "x", "y", "z"]] * 4, answers=[0, 2, 2, 3])
    model = ConstantLM(len(tokenizer), favoured)
    result = multiple_choice_accuracy(model, tokenizer, records, protocol="lm_eval")
    assert result["predictions"] == {"A": 0, "B": 0, "C": 4, "D": 0}
    assert result["value"] == 0.5
    assert [a["correct"] for a in result["answers"]] == [False, True, True, False]  # per question
    assert {a["predicted"] for a in result["answers"]} == {"C"}
    assert result["acc_norm"] == 0.5
    assert result["always_A_baseline"] == 0.25


# ---------------------------------------------------------------------------------------------
# Question answering
# ---------------------------------------------------------------------------------------------


def test_left_padded_generation_is_batch_invariant(tokenizer) -> None:
    model = make_tiny_qwen2(initializer_range=VARIED_INIT)
    prompts = [qa_prompt(question) for question in QUESTIONS]
    tokenizer.padding_side = "right"
    batched = generate_answers(model, tokenizer, prompts, max_new_tokens=8, batch_size=3)
    assert tokenizer.padding_side == "right"  # restored afterwards
    one_by_one = [
        generate_answers(model, tokenizer, [prompt], max_new_tokens=8)[0] for prompt in prompts
    ]
    assert batched == one_by_one
    assert len(set(batched)) > 1  # outputs depend on the prompt, so the check has teeth


@pytest.mark.parametrize("protocol", ["paper3", "lm_eval"])
def test_qa_accuracy_result(tokenizer, protocol: str) -> None:
    model = make_tiny_qwen2(initializer_range=VARIED_INIT)
    records = [
        {"id": f"tc_{i}", "question": q, "answer": "David Seville", "aliases": ["David Seville"]}
        for i, q in enumerate(QUESTIONS)
    ]
    result = qa_accuracy(model, tokenizer, records, protocol=protocol, max_new_tokens=6)
    assert result.keys() >= REQUIRED_KEYS
    assert result["n"] == len(records) and result["protocol"] == protocol
    assert len(result["examples"]) == len(records)
    for example, question in zip(result["examples"], QUESTIONS, strict=True):
        assert example["question"] == question
        if protocol == "paper3":
            assert example["correct"] == qa_correct_paper3(example["output"], ["David Seville"])
    assert result["value"] == sum(e["correct"] for e in result["examples"]) / len(records)


def test_qa_record_without_aliases_is_rejected(tiny_qwen2, tokenizer) -> None:
    with pytest.raises(ValueError, match="record 1.*aliases"):
        qa_accuracy(
            tiny_qwen2,
            tokenizer,
            [{"question": "Q?", "aliases": ["a"]}, {"id": "x", "question": "Q?"}],
        )
