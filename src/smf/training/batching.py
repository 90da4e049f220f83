"""Which examples each optimizer step sees, and how they become a batch.

The batch plan is resumable: a step's examples are a pure function of the seed, the epoch and
the step (and, with length grouping, the token lengths), so a run resumed from a checkpoint
sees exactly the batches an uninterrupted one would. Paper 1's groups (one fact's
paraphrases) stay together; padding carries no loss; micro-batch losses are weighted as
`TrainConfig.loss_weighting` says.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from smf.training.config import TrainConfig


def tokenize(
    tokenizer, texts: Sequence[str], max_length: int, append_eos: bool = True
) -> list[list[int]]:
    """Token ids per text, truncated; with `append_eos` an EOS closes each text so documents
    do not run on (paper 3's code leaves it out, which teaches no stopping)."""
    eos = tokenizer.eos_token_id if append_eos else None
    room = max_length - 1 if eos is not None else max_length
    ids = tokenizer(list(texts), truncation=True, max_length=room)["input_ids"]
    return [x + [eos] if eos is not None else x for x in ids]


def loss_weights(micro: list[list[int]], seqs: list[list[int]], how: str) -> list[float]:
    """Factor on each micro-batch's mean loss (see LOSS_WEIGHTINGS); host-side, no sync."""
    # causal LM: a text of n tokens carries n - 1 losses
    return weights_of_counts([sum(len(seqs[i]) - 1 for i in ids) for ids in micro], how)


def weights_of_counts(n_losses: list[int], how: str) -> list[float]:
    """Factor on each micro-batch's mean loss, from how many losses each one carries (the
    Trainer path counts them on its batches: smf.training.hf_trainer)."""
    if how == "micro_batch_sum":
        return [1.0] * len(n_losses)
    if how == "tokens":
        return [k / max(sum(n_losses), 1) for k in n_losses]
    return [1.0 / len(n_losses)] * len(n_losses)


def collate(seqs: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch; padding carries no loss and no attention."""
    n = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), n), pad_id, dtype=torch.long)
    attention = torch.zeros((len(seqs), n), dtype=torch.long)
    for i, s in enumerate(seqs):
        input_ids[i, : len(s)] = torch.tensor(s)
        attention[i, : len(s)] = 1
    labels = input_ids.masked_fill(attention == 0, -100)
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


def steps_per_epoch(n_examples: int, cfg: TrainConfig) -> int:
    return math.ceil(n_examples / (cfg.micro_batch_size * cfg.grad_accum))


def total_steps(n_examples: int, cfg: TrainConfig) -> int:
    full = cfg.epochs * steps_per_epoch(n_examples, cfg)
    return min(full, cfg.max_steps) if cfg.max_steps else full


# Length grouping sorts this many effective batches at a time (HF's LengthGroupedSampler
# uses 50 too): wide enough to find similar lengths, narrow enough to keep batches random.
GROUP_STEPS = 50


@functools.lru_cache(maxsize=2)
def epoch_order(n_examples: int, seed: int, epoch: int) -> tuple[int, ...]:
    """The shuffled example order of one epoch (cached: a randperm of 60k costs ~4 ms)."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return tuple(torch.randperm(n_examples, generator=gen).tolist())


# The HF Trainer's seed when TrainingArguments is given none (paper 3's SMF trainer)
HF_TRAINER_SEED = 42


def hf_trainer_order(n_examples: int, epoch: int, seed: int = HF_TRAINER_SEED) -> list[int]:
    """The HF Trainer's example order in epoch `epoch` (transformers 5, accelerate 1): its
    RandomSampler becomes accelerate's SeedableRandomSampler, seeded with torch's initial seed
    (the Trainer's `set_seed(args.seed)`) plus the epoch, which draws one randperm."""
    gen = torch.Generator().manual_seed(seed + epoch)
    return torch.randperm(n_examples, generator=gen).tolist()


def group_by_length(
    order: Sequence[int], lengths: Sequence[int], batch: int, seed: int
) -> list[int]:
    """`order` with each window of GROUP_STEPS batches sorted by length (longest first), then
    the window's batches shuffled, so a micro-batch holds texts of similar length and pads
    little, while which batches a step sees stays random. Deterministic given `seed`."""
    gen = torch.Generator().manual_seed(seed)
    out: list[int] = []
    window = batch * GROUP_STEPS
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: -lengths[i])
        batches = [chunk[i : i + batch] for i in range(0, len(chunk), batch)]
        for b in torch.randperm(len(batches), generator=gen).tolist():
            out.extend(batches[b])
    return out


class BatchPlan:
    """Which examples each micro-batch of each optimizer step holds: a pure function of the
    seed, the epoch and (with `group_by_length`) the token lengths, so a resumed run replays
    exactly the same batches. The current epoch's order is computed once.

    With `group_size` g > 1 the texts come in consecutive groups of g (paper 1: the
    paraphrases of one fact) and an epoch shuffles whole groups, keeping each group's texts
    together and in order; with an effective batch of g every step teaches one fact."""

    def __init__(self, lengths: Sequence[int], cfg: TrainConfig):
        self.lengths = list(lengths)
        self.cfg = cfg
        self._epoch: int | None = None
        self._order: Sequence[int] = ()
        if len(self.lengths) % cfg.group_size:
            raise ValueError(
                f"group_size {cfg.group_size} does not divide the {len(self.lengths)} texts: "
                "every group needs exactly group_size consecutive texts"
            )

    def order(self, epoch: int) -> Sequence[int]:
        if epoch != self._epoch:
            cfg, n = self.cfg, len(self.lengths)
            g = cfg.group_size
            if cfg.order == "hf_trainer":  # TrainConfig: then g == 1, no length grouping
                order = hf_trainer_order(n, epoch)
            else:
                order = [i * g + j for i in epoch_order(n // g, cfg.seed, epoch) for j in range(g)]
            if cfg.group_by_length:
                eb = cfg.micro_batch_size * cfg.grad_accum
                order = group_by_length(order, self.lengths, eb, cfg.seed * 1_000_003 + epoch)
            self._epoch, self._order = epoch, order
        return self._order

    def micro_batches(self, step: int) -> list[list[int]]:
        cfg = self.cfg
        epoch, within = divmod(step, steps_per_epoch(len(self.lengths), cfg))
        eb = cfg.micro_batch_size * cfg.grad_accum
        chunk = self.order(epoch)[within * eb : (within + 1) * eb]
        mb = cfg.micro_batch_size
        return [list(chunk[i : i + mb]) for i in range(0, len(chunk), mb)]


def step_batches(n_examples: int, step: int, cfg: TrainConfig) -> list[list[int]]:
    """Example indices of each micro-batch of optimizer step `step` (no length grouping)."""
    if cfg.group_by_length:
        raise ValueError("group_by_length needs the texts' lengths: use BatchPlan")
    return BatchPlan([0] * n_examples, cfg).micro_batches(step)
