"""One training loop for every arm: full finetuning, LoRA, memory recovery and SMF.

The loop is indexed by optimizer step, so a run killed at any point resumes from its last
checkpoint and replays exactly the same batches (the data order is a pure function of seed
and epoch, and RNG state is checkpointed). Checkpoints live in a work folder that is not a
Snakemake output, keyed by a fingerprint of everything the run depends on: a changed
config never resumes stale state.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup

from smf.checkpoint import Checkpointer
from smf.retrofit import memories
from smf.selection import select_rows
from smf.sparse_optim import clip_grad_norm, restrict_grad_to_rows
from smf.statistics import BackgroundStats, SlotCounter, recording

SCHEDULES = ("cosine", "constant")


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
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    max_length: int = 1024
    seed: int = 0
    checkpoint_every: int = 50  # optimizer steps between checkpoints (0: never)
    checkpoint_minutes: float = 0.0  # also checkpoint once this much wall time passed (0: never)

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        self.betas = tuple(self.betas)


@dataclass
class RowSelection:
    """SMF: after each effective batch, keep gradients only on the top-t rows per memory."""

    method: str
    top_t: int
    background: BackgroundStats | None
    count_tokens: str = "attention"  # "attention": real tokens; "loss": tokens that carry loss


@dataclass
class TrainResult:
    steps: int
    log: list[dict]
    wall_seconds: float
    resumed_from: int
    extra: dict = field(default_factory=dict)


def tokenize(tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids per text, truncated; an EOS closes each text so documents do not run on."""
    ids = tokenizer(list(texts), truncation=True, max_length=max_length - 1)["input_ids"]
    eos = tokenizer.eos_token_id
    return [x + [eos] if eos is not None else x for x in ids]


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


def step_batches(n_examples: int, step: int, cfg: TrainConfig) -> list[list[int]]:
    """Example indices of each micro-batch of optimizer step `step` (deterministic)."""
    spe = steps_per_epoch(n_examples, cfg)
    epoch, within = divmod(step, spe)
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
    order = torch.randperm(n_examples, generator=gen).tolist()
    eb = cfg.micro_batch_size * cfg.grad_accum
    chunk = order[within * eb : (within + 1) * eb]
    mb = cfg.micro_batch_size
    return [chunk[i : i + mb] for i in range(0, len(chunk), mb)]


def checkpoint_due(cfg: TrainConfig, done: int, seconds_since_save: float) -> bool:
    """Every `checkpoint_every` steps, or once `checkpoint_minutes` have passed since the last
    save: a step count suits small models, wall time suits large ones (a 6 GB checkpoint every
    200 steps would spend the run writing)."""
    by_steps = cfg.checkpoint_every > 0 and done % cfg.checkpoint_every == 0
    by_time = cfg.checkpoint_minutes > 0 and seconds_since_save >= cfg.checkpoint_minutes * 60
    return by_steps or by_time


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, n_steps: int):
    warmup = min(cfg.warmup_steps, max(n_steps - 1, 0))
    if cfg.schedule == "cosine":
        return get_cosine_schedule_with_warmup(optimizer, warmup, n_steps)
    return get_constant_schedule_with_warmup(optimizer, warmup)


def train(
    model: nn.Module,
    tokenizer,
    texts: Sequence[str],
    cfg: TrainConfig,
    optimizer: torch.optim.Optimizer,
    *,
    work_dir: str | Path,
    fingerprint: str,
    selection: RowSelection | None = None,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train `model` in place on `texts` (loss on all real tokens) and return its log.

    `on_step(step)` runs after each completed optimizer step (tests use it to kill a run).
    """
    if not texts:
        raise ValueError("training set is empty")
    device = next(model.parameters()).device
    seqs = tokenize(tokenizer, texts, cfg.max_length)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    n_steps = total_steps(len(seqs), cfg)
    scheduler = make_scheduler(optimizer, cfg, n_steps)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    ckpt = Checkpointer(work_dir, fingerprint)
    torch.manual_seed(cfg.seed)
    start, log = ckpt.load(model, optimizer, scheduler)
    mems = memories(model) if selection else {}
    if selection and not mems:
        raise ValueError("SMF row selection needs a retrofitted model")
    counter = SlotCounter()
    model.train()
    t0 = last_save = time.perf_counter()
    bar = tqdm(total=n_steps, initial=start, desc="train", disable=not progress)
    for step in range(start, n_steps):
        micro = step_batches(len(seqs), step, cfg)
        loss_sum = 0.0
        for ids in micro:
            batch = {k: v.to(device) for k, v in collate([seqs[i] for i in ids], pad_id).items()}
            if selection:
                with recording(model):
                    out = model(**batch)
                    mask = batch["attention_mask"]
                    if selection.count_tokens == "loss":
                        mask = (batch["labels"] != -100).long()
                    counter.add(model, mask)
            else:
                out = model(**batch)
            loss = out.loss
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"non-finite training loss {loss.item()} at step {step} (micro-batch {ids})"
                )
            (loss / len(micro)).backward()
            loss_sum += loss.item()
        rows_updated = 0
        if selection:
            chosen = select_rows(
                selection.method, counter.counts(), selection.top_t, selection.background
            )
            counter.reset()
            for layer, rows in chosen.items():
                restrict_grad_to_rows(mems[layer].values, rows)
                rows_updated += len(rows)
        grad_norm = clip_grad_norm(params, cfg.max_grad_norm)
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        record = {
            "step": step + 1,
            "loss": loss_sum / len(micro),
            "lr": lr,
            "grad_norm": grad_norm,
            "rows_updated": rows_updated,
        }
        log.append(record)
        bar.update(1)
        bar.set_postfix(loss=f"{record['loss']:.4f}")
        done = step + 1
        if done < n_steps and checkpoint_due(cfg, done, time.perf_counter() - last_save):
            ckpt.save(model, optimizer, scheduler, done, log)
            last_save = time.perf_counter()
        if on_step is not None:
            on_step(done)
    bar.close()
    model.eval()
    return TrainResult(
        steps=n_steps,
        log=log,
        wall_seconds=time.perf_counter() - t0,
        resumed_from=start,
        extra={"config": asdict(cfg)},
    )
