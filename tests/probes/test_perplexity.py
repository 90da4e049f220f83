"""The perplexity probe on a tiny random Qwen2: windowing, and perplexity against HF losses and
the HF perplexity guide's recipe."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import REQUIRED_KEYS

from smf.data.prompts import count_words, wikitext_detokenize, wikitext_paper3_text
from smf.probes.perplexity import (
    mean_nll,
    perplexity,
    rolling_windows,
    sliding_windows,
    text_windows,
)
from smf.probes.scoring import WINDOW_BATCH_TOKENS, window_batches

SENTENCE = " Robert Boulter is an English film , television and theatre actor .\n"
WIKI_ROWS = ["", " = Robert Boulter = \n", "", SENTENCE, " He had a guest @-@ starring role .\n"]


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


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
    # the per-window losses a report resamples add up to the total, window by window
    assert len(result["window_nll"]) == len(result["window_tokens"]) == result["windows"]
    assert sum(result["window_tokens"]) == n - 1
    assert sum(result["window_nll"]) == pytest.approx(total_nll, rel=1e-5)
    assert sum(result["window_nll"]) == pytest.approx(result["nll_per_token"] * (n - 1), rel=1e-12)
    assert len(set(result["window_tokens"])) > 1  # windows differ, so order matters


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


def test_window_batches_bound_count_and_padded_tokens() -> None:
    """Longest first; at most batch_size windows and WINDOW_BATCH_TOKENS padded tokens, except
    a longer window, which goes alone; every window exactly once."""
    windows = [([0] * n, 1) for n in (10, 5000, 3000, 9000, 2, 4096, 4096)]
    out = window_batches(windows, batch_size=3)
    assert sorted(len(w[0]) for b in out for w in b) == sorted(len(w[0]) for w in windows)
    for batch in out:
        width = len(batch[0][0])
        assert all(len(w[0]) <= width for w in batch) and len(batch) <= 3
        assert len(batch) == 1 or len(batch) * width <= WINDOW_BATCH_TOKENS
    assert [len(b) for b in out] == [1, 1, 2, 2, 1]
