"""The question-answering probe: TriviaQA accuracy from greedy generations, and the decoding
settings that produced them.

Split from smf.probes so that generation (left-padded batches, stop strings, the model's own
generation_config) can be read apart from the log-likelihood probes, with which it shares only
eval mode and batching.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from smf.probes import QA_MAX_NEW_TOKENS, batches, eval_mode, model_device
from smf.prompts import (
    LM_EVAL,
    LM_EVAL_QA_STOPS,
    PAPER3,
    check_protocol,
    qa_correct_lm_eval,
    qa_correct_paper3,
    qa_prompt,
)

N_QA_EXAMPLES = 5


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
    device = model_device(model)
    outputs: list[str] = []
    saved_padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    stops = {"stop_strings": list(stop_strings), "tokenizer": tokenizer} if stop_strings else {}
    try:
        with eval_mode(model):
            for batch in tqdm(list(batches(prompts, batch_size)), desc="generate", disable=None):
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
