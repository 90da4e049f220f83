"""The probes' shared scoring, and the multiple-choice probe, for any HF causal LM.

The three probes are multiple choice (here), perplexity (smf.perplexity) and question answering
(smf.qa_probe). Each returns a dict in the spirit of the eval-result schema:
{"metric", "value", "higher_is_better", "n", "protocol", ...extras}. The caller adds the model,
arm, seed and probe names. What they share is here: eval mode, batching, tokenization, scoring
windows of tokens in right-padded batches, and each protocol's defaults for options left null.
Protocol details are in method.md, "Evaluation protocols"; every text format comes from
smf.prompts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from tqdm.auto import tqdm

from smf.prompts import (
    LETTERS,
    LM_EVAL,
    MCQ_HEADER,
    PAPER3,
    check_protocol,
    mcq_continuations,
    mcq_prompt,
)

# Right-padded positions are masked and come after every real token, so their id never matters.
_RIGHT_PAD_ID = 0
# Per-protocol defaults for a probe option left null: paper 3's code generates 32 new tokens and
# scores windows of 1,024 tokens; lm-eval generates up to 256 (`max_gen_toks`) and scores
# rolling windows of the model's maximum length (None here = read from the model's config).
QA_MAX_NEW_TOKENS = {PAPER3: 32, LM_EVAL: 256}
PERPLEXITY_MAX_LENGTH = {PAPER3: 1024, LM_EVAL: None}

# A window of tokens to score: the model reads tokens[:-1]; the last `n_scored` tokens are the
# targets, each predicted from everything before it in the window.
Window = tuple[list[int], int]


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Evaluate in eval mode, then give the model back in the mode it came in."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def batches(items: Sequence, batch_size: int) -> Iterator[Sequence]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, len(items), batch_size):
        yield items[start : start + batch_size]


def encode(tokenizer, text: str) -> list[int]:
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
    device = model_device(model)
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


def total_nll(
    model: torch.nn.Module, windows: Sequence[Window], batch_size: int, desc: str
) -> tuple[float, int]:
    """Summed negative log-likelihood and number of scored tokens over all windows."""
    nll, total_tokens = 0.0, 0
    for batch in tqdm(list(batches(windows, batch_size)), desc=desc, disable=None):
        for log_probs in _score_window_batch(model, batch):
            nll -= log_probs.double().sum().item()
            total_tokens += log_probs.numel()
    return nll, total_tokens


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
            encode(tokenizer, context),
            encode(tokenizer, continuation),
        )
        if not context_ids or not continuation_ids:
            raise ValueError(
                f"request {index}: context and continuation must both be non-empty after "
                f"tokenization, got {context[-40:]!r} / {continuation!r}"
            )
        windows.append((context_ids + continuation_ids, len(continuation_ids)))
    with eval_mode(model):
        results = []
        for batch in tqdm(list(batches(windows, batch_size)), desc=desc, disable=None):
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
