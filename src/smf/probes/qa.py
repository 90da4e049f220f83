"""The question-answering probe: TriviaQA accuracy from greedy generations, and the decoding
settings that produced them.

Split from smf.probes.scoring so that generation (left-padded batches, stop strings, the model's own
generation_config) can be read apart from the log-likelihood probes, with which it shares eval
mode, batching and the forward pass that computes logits only where they are needed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm.auto import tqdm
from transformers import GenerationConfig
from transformers.generation.stopping_criteria import StopStringCriteria

from smf.data.prompts import (
    LM_EVAL,
    LM_EVAL_QA_STOPS,
    PAPER3,
    check_protocol,
    qa_correct_lm_eval,
    qa_correct_paper3,
    qa_prompt,
)
from smf.probes.scoring import (
    QA_MAX_NEW_TOKENS,
    batches,
    continuation_logprobs,
    eval_mode,
    forward_states,
    model_device,
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


# Generation settings that add a logits processor to greedy search. With all of them at their
# defaults, `_greedy` below decodes exactly as `model.generate` would; otherwise generate runs.
_PROCESSOR_FIELDS = (
    "repetition_penalty", "no_repeat_ngram_size", "encoder_no_repeat_ngram_size",
    "bad_words_ids", "min_length", "min_new_tokens", "sequence_bias", "suppress_tokens",
    "begin_suppress_tokens", "forced_bos_token_id", "forced_eos_token_id",
    "exponential_decay_length_penalty", "renormalize_logits", "guidance_scale",
    "watermarking_config", "forced_decoder_ids",
)  # fmt: skip


def _plain_greedy(model: torch.nn.Module) -> bool:
    """True if greedy search on this model is argmax of the last logits, nothing more, and a
    stopped row only pads (without an end token, generate keeps extending stopped rows)."""
    config = getattr(model, "generation_config", None)
    if config is None or config.eos_token_id is None or not hasattr(model, "get_decoder"):
        return False
    default = GenerationConfig()
    return all(
        getattr(config, name, None) == getattr(default, name, None) for name in _PROCESSOR_FIELDS
    )


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

    Prompts are batched longest first (less padding) and left-padded, so every prompt ends
    right where generation starts. Decoding follows the model's generation_config (see
    `decoding_settings`); a row stops at one of the model's end tokens, after
    `max_new_tokens`, or once it has produced a stop string, and then leaves its batch.
    """
    if tokenizer.pad_token_id is None:
        raise ValueError("tokenizer has no pad token; set tokenizer.pad_token before generating")
    encoded = [tokenizer(p, add_special_tokens=add_special_tokens)["input_ids"] for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
    outputs: list[str] = [""] * len(prompts)
    plain = _plain_greedy(model)
    with eval_mode(model):
        for batch in tqdm(list(batches(order, batch_size)), desc="generate", disable=None):
            rows = [encoded[i] for i in batch]
            if plain:
                new = _greedy(model, tokenizer, rows, max_new_tokens, stop_strings)
            else:
                new = _generate(model, tokenizer, rows, max_new_tokens, stop_strings)
            for index, tokens in zip(batch, new, strict=True):
                outputs[index] = tokenizer.decode(tokens, skip_special_tokens=True)
    return outputs


def _left_pad(rows: Sequence[list[int]], pad_id: int, device) -> tuple[torch.Tensor, ...]:
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for row, ids in enumerate(rows):
        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, width - len(ids) :] = 1
    return input_ids.to(device), attention_mask.to(device)


def _generate(model, tokenizer, rows, max_new_tokens, stop_strings) -> list[list[int]]:
    """model.generate on one left-padded batch: the new tokens of each row."""
    input_ids, attention_mask = _left_pad(rows, tokenizer.pad_token_id, model_device(model))
    stops = {"stop_strings": list(stop_strings), "tokenizer": tokenizer} if stop_strings else {}
    generated = model.generate(
        input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max_new_tokens,
        do_sample=False, num_beams=1, pad_token_id=tokenizer.pad_token_id, **stops,
    )  # fmt: skip
    return generated[:, input_ids.shape[1] :].tolist()


def _greedy(model, tokenizer, rows, max_new_tokens, stop_strings) -> list[list[int]]:
    """Greedy search on one left-padded batch with a KV cache, as model.generate does it
    (positions from the attention mask, argmax of float32 logits, its own stop-string
    criterion), except that a row that has stopped leaves the batch and the cache instead of
    generating padding."""
    eos = model.generation_config.eos_token_id
    eos = set([] if eos is None else [eos] if isinstance(eos, int) else eos)
    stops = StopStringCriteria(tokenizer, list(stop_strings)) if stop_strings else None
    sequences, attention_mask = _left_pad(rows, tokenizer.pad_token_id, model_device(model))
    position_ids = (attention_mask.cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)
    input_ids, new = sequences, [[] for _ in rows]
    active, cache = list(range(len(rows))), None
    for _ in range(max_new_tokens):
        states, to_logits, cache = forward_states(
            model, input_ids=input_ids, attention_mask=attention_mask,
            position_ids=position_ids, cache=cache, use_cache=True,
        )  # fmt: skip
        input_ids = to_logits(states[:, -1]).float().argmax(dim=-1, keepdim=True)
        sequences = torch.cat([sequences, input_ids], dim=1)
        stopped = stops(sequences, None).tolist() if stops else [False] * len(active)
        keep = []
        for slot, (row, token) in enumerate(zip(active, input_ids[:, 0].tolist(), strict=True)):
            new[row].append(token)
            if token not in eos and not stopped[slot]:
                keep.append(slot)
        if not keep:
            break
        if len(keep) < len(active):
            index = torch.tensor(keep, device=sequences.device)
            cache.batch_select_indices(index)
            sequences, input_ids = sequences[index], input_ids[index]
            attention_mask, position_ids = attention_mask[index], position_ids[index]
            active = [active[k] for k in keep]
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(len(keep), 1)], 1)
        position_ids = position_ids[:, -1:] + 1
    return new


def chat_prompt(tokenizer, question: str) -> str:
    """The model's own chat template around the bare question (generation prompt added): how
    an instruct model is asked in use, and where it answers more questions than in a bare
    `Question: ...\nAnswer:` prompt."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '?')!r} has no chat template: a qa "
            "probe with `chat_template: true` (or the real-fact task's `chat` prompt) needs one"
        )
    messages = [{"role": "user", "content": question}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def probe_prompts(
    records: Sequence[dict], protocol: str = PAPER3, tokenizer=None, chat_template: bool = False
) -> list[str]:
    """The prompts the probe feeds the model for these qa records (tokenized as
    `adds_special_tokens` says): the protocol's prompt, or with `chat_template` the model's
    own chat template around the bare question."""
    if chat_template:
        return [chat_prompt(tokenizer, rec["question"]) for rec in records]
    return [qa_prompt(rec["question"], protocol) for rec in records]


def adds_special_tokens(protocol: str, chat_template: bool = False) -> bool:
    """Paper 3's code tokenizes with the tokenizer's default special tokens; lm-eval adds none,
    and neither does a chat-template prompt (the template writes its own)."""
    check_protocol(protocol)
    return protocol == PAPER3 and not chat_template


def qa_accuracy(
    model: torch.nn.Module,
    tokenizer,
    records: Sequence[dict],
    protocol: str = PAPER3,
    max_new_tokens: int | None = None,
    batch_size: int = 8,
    gold_logprob: bool = False,
    chat_template: bool = False,
) -> dict:
    """TriviaQA accuracy from greedy generations. paper3: a normalised alias occurs in the
    normalised output; lm_eval: output cut at "\\n", ".", "," (generation stops there too),
    stripped, matches an alias exactly (ignoring case and punctuation). `max_new_tokens=None`
    takes the protocol's default (paper3 32, lm_eval 256). Per-question verdicts are kept
    (`answers`) so retention can be computed from cached results. `gold_logprob` also scores
    each gold answer teacher-forced (see `gold_logprobs`). `chat_template` asks each question
    inside the model's chat template instead of the protocol's prompt; the protocol's answer
    match and stop strings are kept."""
    check_protocol(protocol)
    if not records:
        raise ValueError("qa_accuracy: no records")
    for index, rec in enumerate(records):
        _check_qa(rec, index)
    if max_new_tokens is None:
        max_new_tokens = QA_MAX_NEW_TOKENS[protocol]
    stop_strings = LM_EVAL_QA_STOPS if protocol == LM_EVAL else ()
    prompts = probe_prompts(records, protocol, tokenizer, chat_template)
    outputs = generate_answers(
        model,
        tokenizer,
        prompts,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        add_special_tokens=adds_special_tokens(protocol, chat_template),
        stop_strings=stop_strings,
    )
    is_correct = qa_correct_paper3 if protocol == PAPER3 else qa_correct_lm_eval
    verdicts = [
        is_correct(output, rec["aliases"]) for output, rec in zip(outputs, records, strict=True)
    ]
    n = len(records)
    answers = [
        {"id": rec.get("id", str(i)), "output": outputs[i], "correct": verdicts[i]}
        for i, rec in enumerate(records)
    ]
    extra = {}
    if gold_logprob:
        gold = gold_logprobs(model, tokenizer, prompts, records, batch_size)
        for answer, (logprob, n_tokens) in zip(answers, gold, strict=True):
            answer["gold_logprob"], answer["gold_tokens"] = logprob, n_tokens
        extra["gold_mean_logprob"] = sum(lp / k for lp, k in gold) / n
    return {
        "metric": "accuracy",
        "value": sum(verdicts) / n,
        "higher_is_better": True,
        "n": n,
        "protocol": protocol,
        "chat_template": chat_template,
        "correct": sum(verdicts),
        "max_new_tokens": max_new_tokens,
        "decoding": decoding_settings(model, tokenizer, max_new_tokens, stop_strings),
        **extra,
        # every answer, so retention and protocol checks work from the cached result alone
        "answers": answers,
        "examples": [
            {"question": records[i]["question"], "output": outputs[i], "correct": verdicts[i]}
            for i in range(min(n, N_QA_EXAMPLES))
        ],
    }


def gold_answer(rec: dict) -> str:
    return str(rec.get("answer") or rec["aliases"][0]).strip()


def gold_logprobs(
    model: torch.nn.Module, tokenizer, prompts: Sequence[str], records: Sequence[dict], batch_size
) -> list[tuple[float, int]]:
    """(summed log-prob, tokens) of " " + each record's gold answer (`answer`, else its first
    alias) after its prompt: whether the model moved towards the answer even where greedy
    decoding does not yet produce it. After a prompt that ends in whitespace (a chat template's
    `assistant\n`) the answer starts the line, without the space."""
    requests = [
        (prompt, ("" if prompt[-1:].isspace() else " ") + gold_answer(rec))
        for prompt, rec in zip(prompts, records, strict=True)
    ]
    return continuation_logprobs(model, tokenizer, requests, batch_size, desc="gold answers")
