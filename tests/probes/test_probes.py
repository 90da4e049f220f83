"""Shared scoring and the multiple-choice probe on a tiny random Qwen2: continuation log-probs
and predictions against brute force, models with a known preference."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from conftest import REQUIRED_KEYS, VARIED_INIT, make_tiny_qwen2

from smf.data.prompts import LETTERS, mcq_continuations, mcq_prompt
from smf.probes.scoring import continuation_logprobs, multiple_choice_accuracy


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


def test_shared_contexts_match_unbatched_brute_force(tokenizer) -> None:
    """Contexts of different lengths, each with one-token and multi-token continuations, in
    batches that split and mix them: each score is the full-window forward pass's."""
    model = make_tiny_qwen2(initializer_range=VARIED_INIT)
    contexts = ["Question: Who?\nAnswer:", "A", "Medical exam question:\nQuestion: Which?\nAnswer:"]
    continuations = [" A", " B. Seville", " C. much longer continuation here", " D"]
    requests = [(c, o) for c in contexts for o in continuations] + [(contexts[1], " A")]
    for batch_size in (1, 3, 32):
        scored = continuation_logprobs(model, tokenizer, requests, batch_size=batch_size)
        for (context, continuation), (total, n_tokens) in zip(requests, scored, strict=True):
            ids = _ids(tokenizer, context) + _ids(tokenizer, continuation)
            n = len(_ids(tokenizer, continuation))
            log_probs = model(input_ids=torch.tensor([ids])).logits[0].log_softmax(-1)
            expected = sum(log_probs[len(ids) - n + i - 1, ids[len(ids) - n + i]] for i in range(n))
            assert n_tokens == n
            assert total == pytest.approx(expected.item(), abs=1e-4)
