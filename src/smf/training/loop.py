"""One training loop for every arm: full finetuning, LoRA, memory recovery and SMF.

The loop is indexed by optimizer step, so a run killed at any point resumes from its last
checkpoint and replays exactly the same batches (the data order is a pure function of seed
and epoch, see smf.training.batching, and RNG state is checkpointed). Checkpoints live in a work
folder that is not a Snakemake output, keyed by a fingerprint of everything the run depends
on: a changed config never resumes stale state.

SMF's share of a step (count the slots each micro-batch reads, select rows against the
background, restrict the value gradients, clip) is `SparseStep` and `clip_step`: the Hugging
Face Trainer path (smf.training.hf_trainer) drives the same ones.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup

from smf.method.background import SlotCounter, recording
from smf.method.retrofit import memories
from smf.method.sparse_optim import (
    clip_gradients,
    combining_rows,
    keep_rows,
    restrict_grad_to_rows,
)
from smf.training import precision
from smf.training.batching import BatchPlan, collate, loss_weights, tokenize, total_steps
from smf.training.checkpoint import Checkpointer
from smf.training.config import RowSelection, TrainConfig
from smf.training.diagnostics import (
    SelectionTrace,
    memory_output_ratio_of_ids,
    ratio_sample,
    run_diagnostics,
)


@dataclass
class TrainResult:
    steps: int
    log: list[dict]
    wall_seconds: float
    resumed_from: int
    extra: dict = field(default_factory=dict)


@contextlib.contextmanager
def gradient_row_masks(mems: dict[int, nn.Module], rows: dict[int, torch.Tensor]) -> Iterator:
    """While open, each memory's value gradient is cut to `rows[layer]` (mutable: the caller
    updates it per micro-batch) before it is accumulated, as paper 3's gradient hooks do."""
    handles = [
        m.values.register_hook(lambda g, layer=layer: keep_rows(g, rows[layer]))
        for layer, m in mems.items()
    ]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def gradient_hooks(
    mems: dict[int, nn.Module], selection: RowSelection | None, current: dict[int, torch.Tensor]
) -> contextlib.AbstractContextManager:
    """The value-gradient hooks an arm's training needs while it runs."""
    if selection is None:
        return contextlib.nullcontext()
    if selection.per_micro_batch:  # each micro-batch's gradient cut to its own rows as it arrives
        return gradient_row_masks(mems, current)
    # one gradient row per slot, not one per read (see combining_rows)
    return combining_rows([m.values for m in mems.values()])


def selection_memories(model: nn.Module, selection: RowSelection | None) -> dict[int, nn.Module]:
    """The memories SMF selects rows of, with the background moved once to their device."""
    if selection is None:
        return {}
    mems = memories(model)
    if not mems:
        raise ValueError("SMF row selection needs a retrofitted model")
    if selection.background is not None:
        selection.background = selection.background.to(next(model.parameters()).device)
    return mems


def clip_step(model: nn.Module, params: Iterable[nn.Parameter], cfg: TrainConfig) -> torch.Tensor:
    """Clip as `cfg.clip` says; returns the norm before clipping (on the device). "torch" clips
    model.parameters() in their order, as the HF Trainer does; "smf" the optimizer's params."""
    clip_params = model.parameters() if cfg.clip == "torch" else params
    return clip_gradients(clip_params, cfg.max_grad_norm, cfg.clip)


class SparseStep:
    """count -> select -> restrict for one model; a no-op for arms without a selection.

    Per micro-batch: run the forward inside `recording(model)`, then `count(model, batch)`.
    Per optimizer step, after the last backward: `restrict()`, then clip (`clip_step`).
    `hooks()` must be open while gradients are computed.
    """

    def __init__(
        self, model: nn.Module, selection: RowSelection | None, trace: SelectionTrace | None = None
    ):
        self.selection = selection
        self.mems = selection_memories(model, selection)
        self.counter = SlotCounter()
        self.current: dict[int, torch.Tensor] = {}  # rows the running micro-batch may change
        self.trace = trace

    @property
    def per_micro_batch(self) -> bool:
        return self.selection is not None and self.selection.per_micro_batch

    def hooks(self) -> contextlib.AbstractContextManager:
        return gradient_hooks(self.mems, self.selection, self.current)

    def recording(self, model: nn.Module) -> contextlib.AbstractContextManager:
        """Where the forward runs: memories keep their slot indices (SMF only)."""
        return recording(model) if self.selection is not None else contextlib.nullcontext()

    def count(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> None:
        """Count the slots the last forward read on `batch`'s counted tokens; per micro-batch
        selection chooses this micro-batch's rows now (the hooks cut its gradient to them)."""
        if self.selection is None:
            return
        self.counter.add(model, self.selection.token_mask(batch))
        if self.per_micro_batch:
            self.current.update(self.selection.choose(self.counter, self.trace))

    def restrict(self) -> None:
        """Per-step selection: keep only the chosen rows of each value table's gradient."""
        if self.selection is None or self.per_micro_batch:
            return
        for layer, rows in self.selection.choose(self.counter, self.trace).items():
            restrict_grad_to_rows(self.mems[layer].values, rows)


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


def accumulate_gradients(
    model: nn.Module,
    seqs: list[list[int]],
    micro: list[list[int]],
    cfg: TrainConfig,
    pad_id: int,
    sparse: SparseStep,
) -> torch.Tensor:
    """Forward and backward the micro-batches `micro` of one optimizer step, counting each
    one's slot reads for SMF (`sparse`). Returns the mean micro-batch loss (a device tensor:
    reading it would sync)."""
    device = next(model.parameters()).device
    loss_sum = torch.zeros((), device=device)
    for ids, weight in zip(micro, loss_weights(micro, seqs, cfg.loss_weighting), strict=True):
        batch = {k: v.to(device) for k, v in collate([seqs[i] for i in ids], pad_id).items()}
        with sparse.recording(model):
            with precision.autocast(cfg.precision, device):
                out = model(**batch)
            sparse.count(model, batch)  # selection itself runs outside autocast
        loss = out.loss
        (loss * weight).backward()
        loss_sum += loss.detach().float()
    return loss_sum / len(micro)


def step_record(
    step: int, loss: torch.Tensor, lr: float, grad_norm: torch.Tensor, trace: SelectionTrace | None
) -> dict:
    """One step's log record (loss and norm still on the device); SMF adds its selection."""
    record = {"step": step, "loss": loss, "lr": lr, "grad_norm": grad_norm}
    if trace is None:
        return {**record, "rows_updated": 0}
    fields = trace.record()
    return {**record, "rows_updated": sum(fields["rows_selected"].values()), **fields}


def output_ratio(
    model: nn.Module, sample: list[list[int]], pad_id: int, cfg: TrainConfig
) -> dict[str, dict]:
    """Memory/MLP output sizes on the diagnostic sample ({} for arms without one)."""
    if not sample:
        return {}
    return memory_output_ratio_of_ids(model, sample, pad_id, cfg.micro_batch_size)


def flush(pending: list[dict], log: list[dict]) -> None:
    """Move pending records' device numbers to the host in one sync; a non-finite loss stops
    the run here, before any checkpoint could save it."""
    if not pending:
        return
    keys = ("loss", "grad_norm")
    values = torch.stack([torch.as_tensor(r[k]).float().cpu() for r in pending for k in keys])
    for i, record in enumerate(pending):
        loss, norm = values[2 * i : 2 * i + 2].tolist()
        if not math.isfinite(loss):
            raise FloatingPointError(f"non-finite training loss {loss} at step {record['step']}")
        log.append({**record, "loss": loss, "grad_norm": norm})
    pending.clear()


def optimizer_step(
    model: nn.Module, params: list[nn.Parameter], optimizer: torch.optim.Optimizer, scheduler, cfg
) -> tuple[torch.Tensor, float]:
    """Clip, step the optimizer and the schedule, clear the gradients; returns the gradient
    norm before clipping (on the device) and the learning rate the step used."""
    grad_norm = clip_step(model, params, cfg)
    lr = scheduler.get_last_lr()[0]
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm, lr


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
    precision.allow_tf32(next(model.parameters()).device, cfg.precision)
    seqs = tokenize(tokenizer, texts, cfg.max_length, cfg.append_eos)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    n_steps = total_steps(len(seqs), cfg)
    scheduler = make_scheduler(optimizer, cfg, n_steps)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    ckpt = Checkpointer(work_dir, fingerprint)
    trace = SelectionTrace(selection.top_t) if selection else None
    sparse = SparseStep(model, selection, trace)
    plan = BatchPlan([len(s) for s in seqs], cfg)
    sample = ratio_sample(seqs, plan) if selection else []
    # measured before any checkpoint is loaded: always the model as given (the retrofit)
    ratio_start = output_ratio(model, sample, pad_id, cfg)
    torch.manual_seed(cfg.seed)
    start, log = ckpt.load(model, optimizer, scheduler)
    model.train()
    t0 = last_save = time.perf_counter()
    bar = tqdm(total=n_steps, initial=start, desc="train", disable=not progress)
    pending: list[dict] = []  # records whose loss and norm still live on the device
    with sparse.hooks():
        for step in range(start, n_steps):
            loss = accumulate_gradients(model, seqs, plan.micro_batches(step), cfg, pad_id, sparse)
            sparse.restrict()  # count -> select -> restrict (SMF), shared with SMFTrainer
            grad_norm, lr = optimizer_step(model, params, optimizer, scheduler, cfg)
            pending.append(step_record(step + 1, loss, lr, grad_norm, trace))
            done = step + 1
            save = done < n_steps and checkpoint_due(cfg, done, time.perf_counter() - last_save)
            if save or done % cfg.log_every == 0 or done == n_steps or on_step is not None:
                flush(pending, log)
                bar.set_postfix(loss=f"{log[-1]['loss']:.4f}")
            bar.update(1)
            if save:
                ckpt.save(model, optimizer, scheduler, done, log)
                last_save = time.perf_counter()
            if on_step is not None:
                on_step(done)
    bar.close()
    model.eval()
    extra: dict = {"config": asdict(cfg)}
    if selection:
        ratio_end = output_ratio(model, sample, pad_id, cfg)
        extra["diagnostics"] = run_diagnostics(log, selection, ratio_start, ratio_end, len(sample))
    return TrainResult(
        steps=n_steps,
        log=log,
        wall_seconds=time.perf_counter() - t0,
        resumed_from=start,
        extra=extra,
    )
