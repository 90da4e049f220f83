"""The three probes (multiple choice, perplexity, question answering) for any HF causal LM.

Each probe returns a dict in the spirit of the eval-result schema:
{"metric", "value", "higher_is_better", "n", "protocol", ...extras}. The caller adds the model,
arm, seed and probe names. Protocol details are in method.md, "Evaluation protocols"; every
text format comes from smf.prompts.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from tqdm.auto import tqdm

from smf.prompts import (
    LETTERS,
    LM_EVAL,
    LM_EVAL_QA_STOPS,
    MCQ_HEADER,
    PAPER3,
    check_protocol,
    count_words,
    mcq_continuations,
    mcq_prompt,
    qa_correct_lm_eval,
    qa_correct_paper3,
    qa_prompt,
    sha256_text,
    wikitext_detokenize,
    wikitext_documents,
    wikitext_paper3_text,
)

# Right-padded positions are masked and come after every real token, so their id never matters.
_RIGHT_PAD_ID = 0
N_QA_EXAMPLES = 5
# Per-protocol defaults for a probe option left null: paper 3's code generates 32 new tokens and
# scores windows of 1,024 tokens; lm-eval generates up to 256 (`max_gen_toks`) and scores
# rolling windows of the model's maximum length (None here = read from the model's config).
QA_MAX_NEW_TOKENS = {PAPER3: 32, LM_EVAL: 256}
PERPLEXITY_MAX_LENGTH = {PAPER3: 1024, LM_EVAL: None}
# lm-eval's fallback when neither the model config nor the tokenizer gives a maximum length.
LM_EVAL_DEFAULT_MAX_LENGTH = 2048
_TOKENIZER_INFINITY = int(1e30)

# A window of tokens to score: the model reads tokens[:-1]; the last `n_scored` tokens are the
# targets, each predicted from everything before it in the window.
Window = tuple[list[int], int]


@contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Evaluate in eval mode, then give the model back in the mode it came in."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _batches(items: Sequence, batch_size: int) -> Iterator[Sequence]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, len(items), batch_size):
        yield items[start : start + batch_size]


def _encode(tokenizer, text: str) -> list[int]:
    """Token ids without special tokens (no BOS/EOS is added by any of the protocols)."""
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _score_window_batch(model: torch.nn.Module, windows: Sequence[Window]) -> list[torch.Tensor]:
    """Per-token log-probs of each window's targets, from one right-padded forward pass."""
    lengths = [len(tokens) - 1 for tokens, _ in windows]
    for (tokens, n_scored), length in zip(windows, lengths, strict=True):
        if not 1 <= n_scored <= length:
            raise ValueError(
                f"cannot score {n_scored} of {len(tokens)} tokens: each target needs at least "
                "one preceding token in its window"
            )
    device = _device(model)
    input_ids = torch.full((len(windows), max(lengths)), _RIGHT_PAD_ID, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for row, (tokens, _) in enumerate(windows):
        input_ids[row, : len(tokens) - 1] = torch.tensor(tokens[:-1])
        attention_mask[row, : len(tokens) - 1] = 1
    logits = model(
        input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), use_cache=False
    ).logits

    scores = []
    for row, ((tokens, n_scored), length) in enumerate(zip(windows, lengths, strict=True)):
        # Only the scored positions go through a float32 log-softmax (saves memory at 150k vocab).
        log_probs = logits[row, length - n_scored : length].float().log_softmax(dim=-1)
        targets = torch.tensor(tokens[-n_scored:], device=log_probs.device)
        scores.append(log_probs.gather(-1, targets[:, None]).squeeze(-1))
    return scores


def _total_nll(
    model: torch.nn.Module, windows: Sequence[Window], batch_size: int, desc: str
) -> tuple[float, int]:
    """Summed negative log-likelihood and number of scored tokens over all windows."""
    total_nll, total_tokens = 0.0, 0
    for batch in tqdm(list(_batches(windows, batch_size)), desc=desc, disable=None):
        for log_probs in _score_window_batch(model, batch):
            total_nll -= log_probs.double().sum().item()
            total_tokens += log_probs.numel()
    return total_nll, total_tokens


# ---------------------------------------------------------------------------------------------
# Multiple choice
# ---------------------------------------------------------------------------------------------


@torch.inference_mode()
def continuation_logprobs(
    model: torch.nn.Module,
    tokenizer,
    requests: Sequence[tuple[str, str]],
    batch_size: int = 32,
    desc: str = "loglikelihood",
) -> list[tuple[float, int]]:
    """(summed log-prob, token count) of each continuation given its context.

    Context and continuation are tokenized separately and their ids concatenated, so a BPE
    merge across the boundary can never move tokens between them.
    """
    windows: list[Window] = []
    for index, (context, continuation) in enumerate(requests):
        context_ids, continuation_ids = (
            _encode(tokenizer, context),
            _encode(tokenizer, continuation),
        )
        if not context_ids or not continuation_ids:
            raise ValueError(
                f"request {index}: context and continuation must both be non-empty after "
                f"tokenization, got {context[-40:]!r} / {continuation!r}"
            )
        windows.append((context_ids + continuation_ids, len(continuation_ids)))
    with _eval_mode(model):
        results = []
        for batch in tqdm(list(_batches(windows, batch_size)), desc=desc, disable=None):
            for log_probs in _score_window_batch(model, batch):
                results.append((log_probs.double().sum().item(), log_probs.numel()))
    return results


def multiple_choice_accuracy(
    model: torch.nn.Module,
    tokenizer,
    records: Sequence[dict],
    protocol: str = PAPER3,
    batch_size: int = 8,
    header: str = MCQ_HEADER,
) -> dict:
    """Accuracy of the argmax option. paper3: mean log-prob per continuation token of
    " {L}. {option}"; lm_eval: summed log-prob of " {L}" (acc) and per byte (acc_norm)."""
    check_protocol(protocol)
    if not records:
        raise ValueError("multiple_choice_accuracy: no records")
    requests, continuations = [], []
    for rec in records:
        prompt = mcq_prompt(rec, protocol, header=header)
        options = mcq_continuations(rec, protocol)
        continuations.append(options)
        requests += [(prompt, option) for option in options]

    n_options = len(LETTERS)
    scored = continuation_logprobs(
        model, tokenizer, requests, batch_size=batch_size * n_options, desc=f"MCQ ({protocol})"
    )

    correct = correct_norm = 0
    predicted = Counter()
    answers = []
    for index, rec in enumerate(records):
        option_scores = scored[index * n_options : (index + 1) * n_options]
        if protocol == PAPER3:
            scores = [total / n_tokens for total, n_tokens in option_scores]
        else:
            scores = [total for total, _ in option_scores]
            byte_lengths = [len(option.encode("utf-8")) for option in continuations[index]]
            norm_scores = [
                total / n_bytes
                for (total, _), n_bytes in zip(option_scores, byte_lengths, strict=True)
            ]
            correct_norm += _argmax(norm_scores) == rec["answer"]
        prediction = _argmax(scores)
        predicted[LETTERS[prediction]] += 1
        correct += prediction == rec["answer"]
        answers.append(
            {
                "id": rec.get("id", str(index)),
                "predicted": LETTERS[prediction],
                "correct": prediction == rec["answer"],
            }
        )

    n = len(records)
    result = {
        "metric": "accuracy",
        "value": correct / n,
        "higher_is_better": True,
        "n": n,
        "protocol": protocol,
        "correct": correct,
        "predictions": {letter: predicted[letter] for letter in LETTERS},
        "always_A_baseline": sum(rec["answer"] == 0 for rec in records) / n,
        # per question, so intervals and paired comparisons work from the cached result alone
        "answers": answers,
    }
    if protocol == LM_EVAL:
        result["acc_norm"] = correct_norm / n
    return result


def _argmax(values: Sequence[float]) -> int:
    """First index of the maximum (ties go to the earlier option, like numpy.argmax)."""
    return max(range(len(values)), key=lambda i: (values[i], -i))


# ---------------------------------------------------------------------------------------------
# Perplexity
# ---------------------------------------------------------------------------------------------


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
    return [(ids, len(ids) - 1) for ids in (_encode(tokenizer, t)[:max_length] for t in texts)]


@torch.inference_mode()
def mean_nll(model: torch.nn.Module, windows: Sequence[Window], batch_size: int = 8) -> float:
    """Mean negative log-likelihood per scored token over `windows`."""
    nll, n_scored = _total_nll(model, windows, batch_size, desc="held-out loss")
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
    with _eval_mode(model):
        if protocol == PAPER3:
            return _perplexity_paper3(model, tokenizer, rows, limit, max_length, stride, batch_size)
        return _perplexity_lm_eval(model, tokenizer, rows, max_length, batch_size)


def _perplexity_paper3(model, tokenizer, rows, limit, max_length, stride, batch_size) -> dict:
    text = wikitext_paper3_text(rows, limit)
    if not text:
        raise ValueError("perplexity: no non-empty rows to score")
    ids = _encode(tokenizer, text)
    windows = sliding_windows(ids, max_length, stride)
    nll, n_scored = _total_nll(model, windows, batch_size, desc="perplexity (paper3)")
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
    }


def _perplexity_lm_eval(model, tokenizer, rows, max_length, batch_size) -> dict:
    pages = wikitext_documents(rows)
    if not pages:
        raise ValueError("perplexity: no wikitext pages found in the rows")
    prefix = _prefix_token(tokenizer)
    windows: list[Window] = []
    for page in pages:
        windows += rolling_windows(
            _encode(tokenizer, wikitext_detokenize(page)), prefix, max_length
        )
    nll, n_scored = _total_nll(model, windows, batch_size, desc="perplexity (lm_eval)")
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
    }


# ---------------------------------------------------------------------------------------------
# Question answering
# ---------------------------------------------------------------------------------------------


def _check_qa(rec: dict, index: int) -> None:
    for field in ("question", "aliases"):
        if field not in rec:
            raise ValueError(f"qa record {index} (id={rec.get('id', '?')!r}): missing {field!r}")
    if not isinstance(rec["aliases"], list) or not rec["aliases"]:
        raise ValueError(
            f"qa record {index} (id={rec.get('id', '?')!r}): 'aliases' must be a non-empty list"
        )


def decoding_settings(
    model: torch.nn.Module, tokenizer, max_new_tokens: int, stop_strings: Sequence[str] = ()
) -> dict:
    """The greedy decoding actually used: the model's own generation_config (its end tokens,
    which may be several, and its repetition penalty, as paper 3's code and lm-eval leave them)
    with greedy search and the probe's token budget and stop strings on top."""
    config = model.generation_config
    return {
        "do_sample": False,
        "num_beams": 1,
        "max_new_tokens": max_new_tokens,
        "eos_token_id": config.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "repetition_penalty": config.repetition_penalty,
        "stop_strings": list(stop_strings),
    }


@torch.inference_mode()
def generate_answers(
    model: torch.nn.Module,
    tokenizer,
    prompts: Sequence[str],
    max_new_tokens: int = QA_MAX_NEW_TOKENS[PAPER3],
    batch_size: int = 8,
    add_special_tokens: bool = True,
    stop_strings: Sequence[str] = (),
) -> list[str]:
    """Greedy continuations of the prompts (new tokens only, special tokens dropped).

    Batches are left-padded, so every prompt ends right where generation starts. Decoding
    follows the model's generation_config (see `decoding_settings`); a row stops at one of
    the model's end tokens, after `max_new_tokens`, or once it has produced a stop string.
    """
    if tokenizer.pad_token_id is None:
        raise ValueError("tokenizer has no pad token; set tokenizer.pad_token before generating")
    device = _device(model)
    outputs: list[str] = []
    saved_padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    stops = {"stop_strings": list(stop_strings), "tokenizer": tokenizer} if stop_strings else {}
    try:
        with _eval_mode(model):
            for batch in tqdm(list(_batches(prompts, batch_size)), desc="generate", disable=None):
                encoded = tokenizer(
                    list(batch),
                    return_tensors="pt",
                    padding=True,
                    add_special_tokens=add_special_tokens,
                ).to(device)
                generated = model.generate(
                    **encoded,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    num_beams=1,
                    pad_token_id=tokenizer.pad_token_id,
                    **stops,
                )
                new_tokens = generated[:, encoded["input_ids"].shape[1] :]
                outputs += tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    finally:
        tokenizer.padding_side = saved_padding_side
    return outputs


def qa_accuracy(
    model: torch.nn.Module,
    tokenizer,
    records: Sequence[dict],
    protocol: str = PAPER3,
    max_new_tokens: int | None = None,
    batch_size: int = 8,
) -> dict:
    """TriviaQA accuracy from greedy generations. paper3: a normalised alias occurs in the
    normalised output; lm_eval: output cut at "\\n", ".", "," (generation stops there too),
    stripped, matches an alias exactly (ignoring case and punctuation). `max_new_tokens=None`
    takes the protocol's default (paper3 32, lm_eval 256). Per-question verdicts are kept
    (`answers`) so retention can be computed from cached results."""
    check_protocol(protocol)
    if not records:
        raise ValueError("qa_accuracy: no records")
    for index, rec in enumerate(records):
        _check_qa(rec, index)
    if max_new_tokens is None:
        max_new_tokens = QA_MAX_NEW_TOKENS[protocol]
    stop_strings = LM_EVAL_QA_STOPS if protocol == LM_EVAL else ()
    prompts = [qa_prompt(rec["question"], protocol) for rec in records]
    # Paper 3's code tokenizes with the tokenizer's default special tokens; lm-eval adds none.
    outputs = generate_answers(
        model,
        tokenizer,
        prompts,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        add_special_tokens=protocol == PAPER3,
        stop_strings=stop_strings,
    )
    is_correct = qa_correct_paper3 if protocol == PAPER3 else qa_correct_lm_eval
    verdicts = [
        is_correct(output, rec["aliases"]) for output, rec in zip(outputs, records, strict=True)
    ]
    n = len(records)
    return {
        "metric": "accuracy",
        "value": sum(verdicts) / n,
        "higher_is_better": True,
        "n": n,
        "protocol": protocol,
        "correct": sum(verdicts),
        "max_new_tokens": max_new_tokens,
        "decoding": decoding_settings(model, tokenizer, max_new_tokens, stop_strings),
        # every answer, so retention and protocol checks work from the cached result alone
        "answers": [
            {"id": rec.get("id", str(i)), "output": outputs[i], "correct": verdicts[i]}
            for i, rec in enumerate(records)
        ],
        "examples": [
            {"question": records[i]["question"], "output": outputs[i], "correct": verdicts[i]}
            for i in range(min(n, N_QA_EXAMPLES))
        ],
    }
