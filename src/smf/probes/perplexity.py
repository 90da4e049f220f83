"""The perplexity probe: WikiText scored in windows of tokens, by paper 3's protocol (sliding
windows, token perplexity) or lm-evaluation-harness's (rolling windows over detokenized pages,
word perplexity); also the held-out task loss (`text_windows`, `mean_nll`).

Split from smf.probes.scoring so that the two protocols' windowing rules can be read apart from
multiple
choice and question answering; scoring the windows (`total_nll`) stays in smf.probes.scoring.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from smf.data.prompts import (
    LM_EVAL,
    PAPER3,
    check_protocol,
    count_words,
    sha256_text,
    wikitext_detokenize,
    wikitext_documents,
    wikitext_paper3_text,
)
from smf.probes.scoring import (
    PERPLEXITY_MAX_LENGTH,
    Window,
    encode,
    eval_mode,
    scoring_order_sum,
    total_nll,
    window_nlls,
)

# lm-eval's fallback when neither the model config nor the tokenizer gives a maximum length.
LM_EVAL_DEFAULT_MAX_LENGTH = 2048
_TOKENIZER_INFINITY = int(1e30)


def sliding_windows(ids: Sequence[int], max_length: int, stride: int) -> list[Window]:
    """The HF perplexity-guide windows: start every `stride` tokens, at most `max_length` long,
    each scoring only the tokens no earlier window scored. Every token but the first is scored
    exactly once."""
    if not 1 <= stride <= max_length:
        raise ValueError(f"need 1 <= stride <= max_length, got stride={stride}, {max_length=}")
    if len(ids) < 2:
        raise ValueError(f"need at least 2 tokens to score, got {len(ids)}")
    windows: list[Window] = []
    scored_until = 1  # token 0 has no context
    for begin in range(0, len(ids), stride):
        end = min(begin + max_length, len(ids))
        windows.append((list(ids[begin:end]), end - scored_until))
        scored_until = end
        if end == len(ids):
            break
    return windows


def text_windows(tokenizer, texts: Sequence[str], max_length: int) -> list[Window]:
    """Each text as its own window of at most `max_length` tokens, every token but the first
    scored (held-out task loss: the texts are whole training-format records)."""
    return [(ids, len(ids) - 1) for ids in (encode(tokenizer, t)[:max_length] for t in texts)]


@torch.inference_mode()
def mean_nll(model: torch.nn.Module, windows: Sequence[Window], batch_size: int = 8) -> float:
    """Mean negative log-likelihood per scored token over `windows`."""
    nll, n_scored = total_nll(model, windows, batch_size, desc="held-out loss")
    return nll / n_scored


def rolling_windows(ids: Sequence[int], prefix_token: int, max_length: int) -> list[Window]:
    """lm-eval's rolling loglikelihood windows (context length 1): the first window predicts its
    first token from `prefix_token`; later windows predict the next `max_length` tokens (fewer
    at the end) from the preceding `max_length` tokens. Every token is scored exactly once."""
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    if not ids:
        raise ValueError("cannot score an empty token sequence")
    ids = list(ids)
    first = min(max_length, len(ids))
    windows: list[Window] = [([prefix_token] + ids[:first], first)]
    predicted = first
    while predicted < len(ids):
        n_new = min(len(ids) - predicted, max_length)
        end = predicted + n_new
        windows.append((ids[end - max_length - 1 : end], n_new))
        predicted = end
    return windows


def model_max_length(model: torch.nn.Module, tokenizer) -> int:
    """lm-eval's maximum length (`resolve_max_length`): the config's n_positions,
    max_position_embeddings or n_ctx, else the tokenizer's model_max_length, else 2,048."""
    config = getattr(model.config, "text_config", None) or model.config
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, attr, None)
        if value is not None:
            return int(value)
    tokenizer_max = getattr(tokenizer, "model_max_length", None)
    if tokenizer_max is not None and tokenizer_max != _TOKENIZER_INFINITY:
        return int(tokenizer_max)
    return LM_EVAL_DEFAULT_MAX_LENGTH


def _prefix_token(tokenizer) -> int:
    """lm-eval's prefix token for rolling loglikelihood: BOS if the tokenizer has one, else EOS."""
    for token_id in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return token_id
    raise ValueError("tokenizer has neither a BOS nor an EOS token to predict the first token")


@torch.inference_mode()
def perplexity(
    model: torch.nn.Module,
    tokenizer,
    rows: Sequence[str],
    protocol: str = PAPER3,
    limit: int | None = 1000,
    max_length: int | None = None,
    stride: int = 512,
    batch_size: int = 4,
) -> dict:
    """WikiText perplexity.

    paper3: `rows` are wikitext-103-v1 test rows; the first `limit` non-empty stripped rows are
    joined and scored with sliding windows (`max_length`, `stride`); value = token perplexity.
    lm_eval: `rows` are wikitext-2-raw-v1 test rows; each page is detokenized and scored with
    rolling windows of `max_length`; value = word perplexity, words counted on the original
    page. `limit` and `stride` are unused there.
    `max_length=None` takes the protocol's default: 1,024 for paper3, the model's maximum
    length for lm_eval (lm-eval's own rule, see `model_max_length`).
    """
    check_protocol(protocol)
    if max_length is None:
        max_length = PERPLEXITY_MAX_LENGTH[protocol] or model_max_length(model, tokenizer)
    with eval_mode(model):
        if protocol == PAPER3:
            return _perplexity_paper3(model, tokenizer, rows, limit, max_length, stride, batch_size)
        return _perplexity_lm_eval(model, tokenizer, rows, max_length, batch_size)


def _perplexity_paper3(model, tokenizer, rows, limit, max_length, stride, batch_size) -> dict:
    text = wikitext_paper3_text(rows, limit)
    if not text:
        raise ValueError("perplexity: no non-empty rows to score")
    ids = encode(tokenizer, text)
    windows = sliding_windows(ids, max_length, stride)
    window_nll, window_tokens = window_nlls(model, windows, batch_size, "perplexity (paper3)")
    nll, n_scored = scoring_order_sum(window_nll, windows, batch_size), sum(window_tokens)
    return {
        "metric": "perplexity",
        "value": math.exp(nll / n_scored),
        "higher_is_better": False,
        "n": len([row for row in rows if row.strip()][:limit]),
        "protocol": PAPER3,
        "nll_per_token": nll / n_scored,
        "tokens_scored": n_scored,
        "windows": len(windows),
        "max_length": max_length,
        "stride": stride,
        "text_sha256": sha256_text(text),
        # per window, so a report can resample windows (a block bootstrap over the text)
        "window_nll": window_nll,
        "window_tokens": window_tokens,
    }


def _perplexity_lm_eval(model, tokenizer, rows, max_length, batch_size) -> dict:
    pages = wikitext_documents(rows)
    if not pages:
        raise ValueError("perplexity: no wikitext pages found in the rows")
    prefix = _prefix_token(tokenizer)
    windows: list[Window] = []
    page_of: list[int] = []
    for index, page in enumerate(pages):
        ids = encode(tokenizer, wikitext_detokenize(page))
        page_windows = rolling_windows(ids, prefix, max_length)
        windows += page_windows
        page_of += [index] * len(page_windows)
    window_nll, window_tokens = window_nlls(model, windows, batch_size, "perplexity (lm_eval)")
    nll, n_scored = scoring_order_sum(window_nll, windows, batch_size), sum(window_tokens)
    page_nll = [0.0] * len(pages)
    for index, value in zip(page_of, window_nll, strict=True):
        page_nll[index] += value
    words = sum(count_words(page) for page in pages)
    n_bytes = sum(len(page.encode("utf-8")) for page in pages)
    word_perplexity = math.exp(nll / words)
    return {
        "metric": "perplexity",
        "value": word_perplexity,
        "higher_is_better": False,
        "n": len(pages),
        "protocol": LM_EVAL,
        "word_perplexity": word_perplexity,
        "byte_perplexity": math.exp(nll / n_bytes),
        "bits_per_byte": nll / n_bytes / math.log(2),
        "words": words,
        "bytes": n_bytes,
        "tokens_scored": n_scored,
        "max_length": max_length,
        # per page, so a report can resample pages
        "page_nll": page_nll,
        "page_words": [count_words(page) for page in pages],
    }
