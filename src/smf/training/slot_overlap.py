"""Can a held-out wording of a question reach the memory rows its taught wording trained?

SMF changes only the value rows a training batch read. A fact taught through one wording is
recalled from another only if that wording's answer position reads (some of) the same slots.
For pairs of prompts (taught wording, held-out wording) of the same fact, this measures per
memory layer the Jaccard overlap of the slot sets read at the answer position, against the
same overlap for mismatched pairs (taught wording of fact i, held-out wording of fact j != i),
which is what chance sharing (hub slots, a shared template) alone gives.

The answer position is the prompt's last token: the one whose output predicts the answer's
first token. Its slot set is every slot any head read there (up to heads x k slots).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import torch
from torch import nn

from smf.method.background import recording
from smf.method.retrofit import memories
from smf.training.batching import collate
from smf.training.diagnostics import trunk


def jaccard(a: frozenset[int] | set[int], b: frozenset[int] | set[int]) -> float:
    """|a & b| / |a | b|; two empty sets count as identical (1.0)."""
    union = len(a | b)
    return len(a & b) / union if union else 1.0


@torch.no_grad()
def answer_slots(
    model: nn.Module,
    tokenizer,
    prompts: Sequence[str],
    *,
    batch_size: int = 16,
    add_special_tokens: bool = False,
) -> dict[int, list[frozenset[int]]]:
    """Per memory layer, the set of slots read at each prompt's last token, in prompt order.

    Each distinct prompt is run once (right-padded batches, so a real token never sees
    padding); identical prompts therefore get identical sets. As the probes do, no special
    tokens are added unless `add_special_tokens` says so."""
    mems = memories(model)
    if not mems:
        raise ValueError("answer_slots needs a retrofitted model (no memory layers found)")
    unique = list(dict.fromkeys(prompts))
    ids = tokenizer(unique, add_special_tokens=add_special_tokens)["input_ids"]
    if any(len(x) == 0 for x in ids):
        raise ValueError("answer_slots: a prompt tokenizes to nothing")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    found: dict[int, dict[str, frozenset[int]]] = {layer: {} for layer in mems}
    was_training = model.training
    model.eval()
    try:
        with recording(model):
            for start in range(0, len(unique), batch_size):
                chunk = ids[start : start + batch_size]
                batch = collate(chunk, pad_id)
                trunk(model)(
                    input_ids=batch["input_ids"].to(device),
                    attention_mask=batch["attention_mask"].to(device),
                )
                last = torch.tensor([len(x) - 1 for x in chunk])
                rows = torch.arange(len(chunk))
                for layer, m in mems.items():
                    read = m.last_indices[rows, last.to(m.last_indices.device)].reshape(
                        len(chunk), -1
                    )
                    for prompt, slots in zip(unique[start:], read.tolist(), strict=False):
                        found[layer][prompt] = frozenset(slots)
    finally:
        model.train(was_training)
    return {layer: [found[layer][p] for p in prompts] for layer in mems}


def overlap_summary(
    taught: Sequence[frozenset[int]], held_out: Sequence[frozenset[int]]
) -> dict[str, float | int | list[float] | None]:
    """Mean Jaccard of matched pairs (taught[i], held_out[i]) and of every mismatched pair
    (taught[i], held_out[j]), j != i: the chance level the matched pairs are read against."""
    if len(taught) != len(held_out):
        raise ValueError(f"{len(taught)} taught sets but {len(held_out)} held-out sets")
    if not taught:
        raise ValueError("overlap_summary needs at least one pair")
    matched = [jaccard(a, b) for a, b in zip(taught, held_out, strict=True)]
    random = [
        jaccard(a, b)
        for i, a in enumerate(taught)
        for j, b in enumerate(held_out)
        if i != j  # all n(n-1) mismatched pairs: exact, no sampling seed to report
    ]
    return {
        "matched": statistics.fmean(matched),
        "random": statistics.fmean(random) if random else None,
        "pairs": len(matched),
        "random_pairs": len(random),
        "matched_per_pair": matched,
    }


def answer_slot_overlap(
    model: nn.Module,
    tokenizer,
    pairs: Sequence[tuple[str, str]],
    *,
    batch_size: int = 16,
    add_special_tokens: bool = False,
) -> dict[int, dict[str, float | int | list[float] | None]]:
    """Per memory layer: mean Jaccard of the answer-position slot sets of each pair's two
    prompts ("matched"), of mismatched pairs ("random"), the counts, and the per-pair values.

    `pairs` are (taught wording, held-out wording) of the same fact, each a full prompt as
    the model sees it (chat template applied by the caller), ending just before the answer.
    """
    if not pairs:
        raise ValueError("answer_slot_overlap needs at least one pair of prompts")
    first = [a for a, _ in pairs]
    second = [b for _, b in pairs]
    slots = answer_slots(
        model, tokenizer, first + second, batch_size=batch_size,
        add_special_tokens=add_special_tokens,
    )  # fmt: skip
    n = len(pairs)
    return {layer: overlap_summary(sets[:n], sets[n:]) for layer, sets in slots.items()}
