"""The probes' shared scoring, and the multiple-choice probe, for any HF causal LM.

The three probes are multiple choice (here), perplexity (smf.probes.perplexity) and question
answering
(smf.probes.qa). Each returns a dict in the spirit of the eval-result schema:
{"metric", "value", "higher_is_better", "n", "protocol", ...extras}. The caller adds the model,
arm, seed and probe names. What they share is here: eval mode, batching, tokenization, scoring
windows of tokens in right-padded batches, and each protocol's defaults for options left null.
Protocol details are in docs/method.md, "Evaluation protocols"; every text format comes from
smf.data.prompts.
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from tqdm.auto import tqdm

from smf.data.prompts import (
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


# Logits are computed for at most this many elements at a time (256 MB in float32), so scoring
# long windows never holds a (batch x window x vocabulary) tensor.
_LOGIT_CHUNK_ELEMENTS = 2**26
# A batch of windows holds at most this many padded tokens (one longer window goes alone), which
# bounds activation and attention memory: lm-eval's default window of 8,192 tokens scores alone.
WINDOW_BATCH_TOKENS = 8192
# Config fields that mean the logits are not just the output head applied to the hidden states.
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling")


def _trunk_and_head(model: torch.nn.Module):
    """(decoder, output head) when the model's logits are exactly head(decoder(...)), else
    (None, None). Calling them apart lets the probes compute logits only where they score."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    config = getattr(model, "config", None)
    config = getattr(config, "text_config", None) or config
    if decoder is None or decoder is model or not isinstance(head, torch.nn.Linear):
        return None, None
    if any(getattr(config, name, None) not in (None, 1, 1.0) for name in _LOGIT_TRANSFORMS):
        return None, None
    return decoder, head


def forward_states(model: torch.nn.Module, **inputs):
    """(states, to_logits, cache): states are hidden states with to_logits the output head when
    the model splits cleanly (see `_trunk_and_head`), else the logits with to_logits identity."""
    decoder, head = _trunk_and_head(model)
    module = model if decoder is None else decoder
    if "cache" in inputs and "cache" not in inspect.signature(module.forward).parameters:
        inputs["past_key_values"] = inputs.pop("cache")  # transformers before the rename
    out = module(**inputs)
    cache = getattr(out, "cache", None)
    if cache is None:  # transformers before the rename
        cache = getattr(out, "past_key_values", None)
    if decoder is None:
        return out.logits, lambda states: states, cache
    return out.last_hidden_state, head, cache


def target_log_probs(states: torch.Tensor, to_logits, targets: Sequence[int]) -> torch.Tensor:
    """Log-prob of each target from the states (one position per target), logits computed in
    chunks of bounded size; only these positions go through a float32 log-softmax."""
    if len(targets) != states.shape[0]:
        raise ValueError(f"{len(targets)} targets for {states.shape[0]} positions")
    if not targets:
        return states.new_zeros(0, dtype=torch.float32)
    targets_t = torch.tensor(list(targets), device=states.device)
    vocab = to_logits.out_features if isinstance(to_logits, torch.nn.Linear) else states.shape[-1]
    step = max(1, _LOGIT_CHUNK_ELEMENTS // vocab)
    out = []
    for start in range(0, len(targets), step):
        log_probs = to_logits(states[start : start + step]).float().log_softmax(dim=-1)
        out.append(log_probs.gather(-1, targets_t[start : start + step, None]).squeeze(-1))
    return torch.cat(out)


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
    states, to_logits, _ = forward_states(
        model, input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
        use_cache=False,
    )  # fmt: skip
    return [
        target_log_probs(states[row, length - n_scored : length], to_logits, tokens[-n_scored:])
        for row, ((tokens, n_scored), length) in enumerate(zip(windows, lengths, strict=True))
    ]


def total_nll(
    model: torch.nn.Module, windows: Sequence[Window], batch_size: int, desc: str
) -> tuple[float, int]:
    """Summed negative log-likelihood and number of scored tokens over all windows."""
    nll, n_scored = window_nlls(model, windows, batch_size, desc)
    return scoring_order_sum(nll, windows, batch_size), sum(n_scored)


def window_nlls(
    model: torch.nn.Module, windows: Sequence[Window], batch_size: int, desc: str
) -> tuple[list[float], list[int]]:
    """Each window's summed negative log-likelihood and scored-token count, in `windows`' order
    (kept so a report can resample windows).

    Windows go longest first (little padding) in batches of at most `batch_size` windows and
    at most `WINDOW_BATCH_TOKENS` padded tokens (a longer window goes alone), so activation
    memory stays bounded whatever the window length; logits are chunked in `target_log_probs`.
    """
    nll, n_scored = [0.0] * len(windows), [0] * len(windows)
    batches_of_indices = window_batches(list(range(len(windows))), batch_size, windows)
    for batch in tqdm(batches_of_indices, desc=desc, disable=None):
        scored = _score_window_batch(model, [windows[i] for i in batch])
        for index, log_probs in zip(batch, scored, strict=True):
            nll[index] = -log_probs.double().sum().item()
            n_scored[index] = log_probs.numel()
    return nll, n_scored


def scoring_order_sum(nll: list[float], windows: Sequence[Window], batch_size: int) -> float:
    """The windows' total summed in the order they were scored (the historical total, bit for
    bit: float addition is not associative)."""
    total = 0.0
    for batch in window_batches(list(range(len(windows))), batch_size, windows):
        for index in batch:
            total += nll[index]
    return total


def window_batches(windows: Sequence, batch_size: int, shapes: Sequence[Window] | None = None):
    """Windows sorted longest first and cut into batches by count and by padded tokens.

    With `shapes`, `windows` are indices into it (the batches then hold indices)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    def length(item) -> int:
        return len((shapes[item] if shapes is not None else item)[0])

    out: list[list] = []
    for window in sorted(windows, key=lambda w: -length(w)):
        batch = out[-1] if out else None
        # sorted longest first, so the batch's first window sets its padded width
        if (
            batch
            and len(batch) < batch_size
            and (len(batch) + 1) * length(batch[0]) <= max(WINDOW_BATCH_TOKENS, length(batch[0]))
        ):
            batch.append(window)
        else:
            out.append([window])
    return out


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
    merge across the boundary can never move tokens between them. Requests sharing a context
    share its forward pass: one-token continuations are all scored from it (as lm-eval's
    logits cache does), longer ones reuse its KV cache. At most `batch_size` requests
    (whole contexts, longest first) go through the model at once.
    """
    groups: dict[tuple[int, ...], list[tuple[int, list[int]]]] = {}
    for index, (context, continuation) in enumerate(requests):
        context_ids, continuation_ids = encode(tokenizer, context), encode(tokenizer, continuation)
        if not context_ids or not continuation_ids:
            raise ValueError(
                f"request {index}: context and continuation must both be non-empty after "
                f"tokenization, got {context[-40:]!r} / {continuation!r}"
            )
        groups.setdefault(tuple(context_ids), []).append((index, continuation_ids))
    ordered = sorted(groups.items(), key=lambda item: -len(item[0]))
    chunks, chunk, n_requests = [], [], 0
    for item in ordered:
        if chunk and n_requests + len(item[1]) > batch_size:
            chunks.append(chunk)
            chunk, n_requests = [], 0
        chunk.append(item)
        n_requests += len(item[1])
    chunks += [chunk] if chunk else []
    results: list[tuple[float, int]] = [(0.0, 0)] * len(requests)
    with eval_mode(model):
        for chunk in tqdm(chunks, desc=desc, disable=None):
            for index, log_probs in _score_shared_contexts(model, chunk):
                results[index] = (log_probs.double().sum().item(), log_probs.numel())
    return results


def _score_shared_contexts(
    model: torch.nn.Module, groups: Sequence[tuple[tuple[int, ...], list[tuple[int, list[int]]]]]
) -> list[tuple[int, torch.Tensor]]:
    """Per-token log-probs of each request's continuation: one right-padded pass over the
    contexts, then (if any continuation is longer than one token) one pass over the
    continuations' remaining tokens on top of the contexts' KV cache."""
    device = model_device(model)
    context_lengths = [len(context) for context, _ in groups]
    width = max(context_lengths)
    input_ids = torch.full((len(groups), width), _RIGHT_PAD_ID, dtype=torch.long)
    context_mask = torch.zeros_like(input_ids)
    for row, (context, _) in enumerate(groups):
        input_ids[row, : len(context)] = torch.tensor(context)
        context_mask[row, : len(context)] = 1
    rows = [(row, index, ids) for row, (_, reqs) in enumerate(groups) for index, ids in reqs]
    multi_token = any(len(ids) > 1 for _, _, ids in rows)
    states, to_logits, cache = forward_states(
        model, input_ids=input_ids.to(device), attention_mask=context_mask.to(device),
        use_cache=multi_token,
    )  # fmt: skip
    last = states[[row for row, _, _ in rows], [context_lengths[row] - 1 for row, _, _ in rows]]
    first = target_log_probs(last, to_logits, [ids[0] for _, _, ids in rows])
    if not multi_token:
        return [(index, first[i : i + 1]) for i, (_, index, _) in enumerate(rows)]
    if cache is None:  # a model without a KV cache: score whole windows
        windows = [(list(groups[row][0]) + ids, len(ids)) for row, _, ids in rows]
        scored = _score_window_batch(model, windows)
        return list(zip([index for _, index, _ in rows], scored, strict=True))

    # Continuation tokens but the last are the inputs; they sit after their context's
    # positions, and the padding between a short context and its continuation is masked.
    tail = max(len(ids) for _, _, ids in rows) - 1
    tail_ids = torch.full((len(rows), max(tail, 1)), _RIGHT_PAD_ID, dtype=torch.long)
    tail_mask = torch.zeros_like(tail_ids)
    for i, (_, _, ids) in enumerate(rows):
        tail_ids[i, : len(ids) - 1] = torch.tensor(ids[:-1], dtype=torch.long)
        tail_mask[i, : len(ids) - 1] = 1
    source_rows = torch.tensor([row for row, _, _ in rows], device=device)
    cache.batch_select_indices(source_rows)
    positions = torch.tensor([context_lengths[row] for row, _, _ in rows])[:, None]
    states, to_logits, _ = forward_states(
        model, input_ids=tail_ids.to(device),
        attention_mask=torch.cat([context_mask[source_rows.cpu()], tail_mask], dim=1).to(device),
        position_ids=(positions + torch.arange(tail_ids.shape[1])).to(device),
        cache=cache, use_cache=True,
    )  # fmt: skip
    scored = []
    for i, (_, index, ids) in enumerate(rows):
        rest = target_log_probs(states[i, : len(ids) - 1], to_logits, ids[1:])
        scored.append((index, torch.cat([first[i : i + 1], rest])))
    return scored


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
