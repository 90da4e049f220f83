"""What a training run is told: optimisation settings (TrainConfig) shared by every arm, and
SMF's row selection (RowSelection), apart from the loop so batching and diagnostics can read
them without importing it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from smf.method.background import BackgroundStats, SlotCounter
from smf.method.selection import TIES, select_rows
from smf.method.sparse_optim import CLIPS
from smf.training import precision

if TYPE_CHECKING:
    from smf.training.diagnostics import SelectionTrace

SCHEDULES = ("cosine", "constant")
# How micro-batch losses combine into the step's gradient:
#   micro_batch_mean: mean of the micro-batches' mean token losses [ours];
#   tokens: every loss-carrying token of the effective batch weighs the same (the HF Trainer,
#           so paper 3's full finetuning, LoRA and recovery);
#   micro_batch_sum: sum of the micro-batches' mean losses (paper 3's SMF trainer, whose
#           compute_loss ignores the Trainer's token count, so no division by grad_accum).
LOSS_WEIGHTINGS = ("micro_batch_mean", "tokens", "micro_batch_sum")
SELECT_PER = ("step", "micro_batch")
# Example order per epoch: plan [ours] shuffles by the run's seed (smf.training.batching);
# hf_trainer is the HF Trainer's with its default seed 42, whatever the run's seed (paper 3).
ORDERS = ("plan", "hf_trainer")
COUNT_TOKENS = ("attention", "loss", "all")


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


@dataclass
class TrainConfig:
    """Optimisation settings shared by all arms (paper 3 defaults where it gives them)."""

    lr: float
    epochs: int = 3
    max_steps: int | None = None  # cap on optimizer steps (None: epochs decide)
    micro_batch_size: int = 2
    grad_accum: int = 8  # effective batch = micro_batch_size * grad_accum
    warmup_steps: int = 100
    schedule: str = "cosine"
    max_grad_norm: float = 1.0
    clip: str = "smf"  # one of CLIPS; "torch": torch's clip_grad_norm_, as paper 3's Trainer
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    max_length: int = 1024
    seed: int = 0
    checkpoint_every: int = 50  # optimizer steps between checkpoints (0: never)
    checkpoint_minutes: float = 0.0  # also checkpoint once this much wall time passed (0: never)
    append_eos: bool = True  # end each training text with EOS [ours]; paper 3's code does not
    loss_weighting: str = "micro_batch_mean"  # one of LOSS_WEIGHTINGS
    precision: str = "fp32"  # fp32 | bf16_autocast | bf16 (see smf.training.precision)
    group_by_length: bool = False  # batches of similar length (less padding), see BatchPlan
    log_every: int = 1  # steps between host syncs of loss and grad norm (logged every step)
    group_size: int = 1  # consecutive texts that stay together when shuffled, see BatchPlan
    order: str = "plan"  # one of ORDERS

    def __post_init__(self) -> None:
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("loss_weighting", self.loss_weighting, LOSS_WEIGHTINGS)
        check_choice("clip", self.clip, CLIPS)
        precision.check(self.precision)
        if self.log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {self.log_every}")
        if self.group_size < 1:
            raise ValueError(f"group_size must be >= 1, got {self.group_size}")
        if self.group_size > 1 and self.group_by_length:
            raise ValueError("group_size > 1 and group_by_length exclude each other")
        check_choice("order", self.order, ORDERS)
        if self.order == "hf_trainer" and (self.group_size > 1 or self.group_by_length):
            raise ValueError(
                "order hf_trainer shuffles texts one by one: it needs group_size 1 "
                "and group_by_length false"
            )
        self.betas = tuple(self.betas)


@dataclass
class RowSelection:
    """SMF: keep gradients only on the top-t rows per memory that the batch reads.

    per="step" [ours]: one selection over the whole effective batch, applied to its summed
    gradient, so at most top_t rows per layer change per step.
    per="micro_batch" (paper 3's code): each micro-batch selects from its own reads and its
    gradient is masked to those rows before it is accumulated, so a step can touch up to
    grad_accum x top_t rows per layer.
    count_tokens: "attention" (real tokens), "loss" (tokens that carry loss) or "all" (every
    position, padding included, as paper 3's code counts).
    """

    method: str
    top_t: int
    background: BackgroundStats | None
    count_tokens: str = "attention"
    per: str = "step"
    kl_eps: float = 0.0  # paper 3's code: 1e-8
    ties: str = "lowest_id"  # at the top-t cut; "topk": paper 3's (smf.method.selection)

    def __post_init__(self) -> None:
        check_choice("select_ties", self.ties, TIES)
        check_choice("selection per", self.per, SELECT_PER)
        check_choice("count_tokens", self.count_tokens, COUNT_TOKENS)

    @property
    def per_micro_batch(self) -> bool:
        return self.per == "micro_batch"

    def token_mask(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.count_tokens == "loss":
            return (batch["labels"] != -100).long()
        if self.count_tokens == "all":
            return torch.ones_like(batch["attention_mask"])
        return batch["attention_mask"]

    def choose(
        self, counter: SlotCounter, trace: SelectionTrace | None = None
    ) -> dict[int, torch.Tensor]:
        """The rows to keep per layer; `trace` is told what was read and kept (diagnostics)."""
        counts = counter.counts()
        counter.reset()
        rows = select_rows(self.method, counts, self.top_t, self.background, self.kl_eps, self.ties)
        if trace is not None:
            trace.add(counts, rows)
        return rows
