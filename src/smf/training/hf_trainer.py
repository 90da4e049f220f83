"""The Hugging Face `transformers.Trainer` running SMF steps.

`SMFTrainer` drives the pipeline's own SMF code (smf.training.loop.SparseStep): every
micro-batch's forward runs while the memories record their reads, the slots read by real tokens
are counted, and before the optimizer step the rows are selected against the background and
the value gradients restricted to them, then clipped (clip_step). The optimizer is the
pipeline's (smf.training.arms.setup_smf: the sparse SGD/Adam of smf.method.sparse_optim), the
schedule too (loop.make_scheduler), and so are the batch order (PlanSampler: BatchPlan's
permutation per epoch) and the loss weighting (batching.weights_of_counts). With the settings
`training_arguments(cfg)` gives, the Trainer reproduces `loop.train(cfg)` exactly.

Checkpoints and `save_model` hold the memory only (memory.safetensors + memory.json); resuming
from one restores the memory, the optimizer (sparse Adam state included), the schedule and
the data position, as the Trainer does for any model. One process (no DDP/FSDP/DeepSpeed).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import torch
from torch.utils.data import Dataset, Sampler
from transformers import Trainer, TrainingArguments

from smf.method.background import BackgroundStats
from smf.method.retrofit import load_memory_tensors, save_memory
from smf.training.arms.smf import setup_smf
from smf.training.batching import BatchPlan, collate, tokenize, weights_of_counts
from smf.training.config import RowSelection, TrainConfig
from smf.training.loop import SparseStep, clip_step, make_scheduler

if TYPE_CHECKING:
    from torch import nn

MEMORY_FILE = "memory.safetensors"
TRAINING_ARGS_NAME = "training_args.bin"
# TrainingArguments.lr_scheduler_type -> TrainConfig.schedule (both warm up linearly)
SCHEDULES = {"cosine": "cosine", "constant_with_warmup": "constant"}


class SelectionSettings(Protocol):
    """What SMFTrainer reads from `model.smf_config` (smf.api.SMFConfig has it)."""

    optimizer: str
    loss_weighting: str

    def row_selection(self, background: BackgroundStats | None) -> RowSelection: ...


class TokenizedTexts(Dataset):
    """Texts tokenized as the pipeline's loop tokenizes them (batching.tokenize: truncated,
    EOS appended): item i is {"input_ids": [...]}; `collator(pad_id)` pads them."""

    def __init__(
        self, tokenizer, texts: Sequence[str], max_length: int = 1024, append_eos: bool = True
    ):
        if not texts:
            raise ValueError("training set is empty")
        self.seqs = tokenize(tokenizer, texts, max_length, append_eos)

    def __len__(self) -> int:
        return len(self.seqs)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return {"input_ids": self.seqs[i]}


def collator(pad_id: int) -> Callable[[list[dict]], dict[str, torch.Tensor]]:
    """The loop's batches: right padding, no attention and no loss on padding."""

    def collate_features(features: list[dict]) -> dict[str, torch.Tensor]:
        return collate([list(f["input_ids"]) for f in features], pad_id)

    return collate_features


class PlanSampler(Sampler[int]):
    """The loop's example order: epoch e yields BatchPlan's order for e, so the Trainer's
    micro-batches (consecutive `per_device_train_batch_size` examples, `grad_accum` of them a
    step) are the loop's."""

    def __init__(self, lengths: Sequence[int], cfg: TrainConfig):
        self.plan = BatchPlan(lengths, cfg)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(list(self.plan.order(self.epoch)))

    def __len__(self) -> int:
        return len(self.plan.lengths)


def train_config(
    args: TrainingArguments, loss_weighting: str = "micro_batch_mean", clip: str = "smf"
) -> TrainConfig:
    """The TrainConfig the pipeline's loop would run for these Trainer arguments (warmup as a
    ratio is resolved once the number of steps is known, in SMFTrainer.create_scheduler)."""
    kind = str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type))
    if kind not in SCHEDULES:
        raise ValueError(
            f"SMFTrainer runs the pipeline's schedules: lr_scheduler_type one of "
            f"{sorted(SCHEDULES)}, got {kind!r}"
        )
    if args.fp16:
        raise ValueError("SMFTrainer: fp16 (loss scaling) is not supported; use bf16=True")
    return TrainConfig(
        lr=args.learning_rate,
        epochs=max(1, math.ceil(args.num_train_epochs)),
        max_steps=args.max_steps if args.max_steps > 0 else None,
        micro_batch_size=args.per_device_train_batch_size,
        grad_accum=args.gradient_accumulation_steps,
        warmup_steps=int(args.warmup_steps) if args.warmup_steps >= 1 else 0,
        schedule=SCHEDULES[kind],
        max_grad_norm=args.max_grad_norm,
        clip=clip,
        weight_decay=args.weight_decay,
        betas=(args.adam_beta1, args.adam_beta2),
        eps=args.adam_epsilon,
        seed=args.seed,
        checkpoint_every=0,
        loss_weighting=loss_weighting,
        precision="bf16_autocast" if args.bf16 else "fp32",
        group_by_length=args.train_sampling_strategy == "group_by_length",
    )


def training_arguments(cfg: TrainConfig, output_dir: str | Path, **overrides) -> TrainingArguments:
    """Trainer arguments under which SMFTrainer runs `cfg` as loop.train does (same batches,
    schedule, clipping, precision, seed); `overrides` go to TrainingArguments as they are.
    Tokenize with TokenizedTexts(tokenizer, texts, cfg.max_length, cfg.append_eos)."""
    if cfg.group_size != 1:
        raise ValueError("SMFTrainer does not keep groups of texts together (group_size 1)")
    kwargs = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=cfg.micro_batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        warmup_steps=cfg.warmup_steps,
        lr_scheduler_type="cosine" if cfg.schedule == "cosine" else "constant_with_warmup",
        max_grad_norm=cfg.max_grad_norm,
        weight_decay=cfg.weight_decay,
        adam_beta1=cfg.betas[0],
        adam_beta2=cfg.betas[1],
        adam_epsilon=cfg.eps,
        seed=cfg.seed,
        bf16=cfg.precision != "fp32",
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        save_strategy="steps" if cfg.checkpoint_every else "no",
        save_steps=cfg.checkpoint_every or 500,
        logging_steps=cfg.log_every,
        report_to="none",
        disable_tqdm=True,
    )
    kwargs.update(overrides)
    return TrainingArguments(**kwargs)


class SMFTrainer(Trainer):
    """`transformers.Trainer` whose steps are SMF steps (see the module doc).

    The selection settings come from `model.smf_config` (smf.api.get_smf_model sets it), or
    from `selection`, `optimizer` and `loss_weighting` given here; `background` is the
    BackgroundStats that tfidf and kl rank against. `clip` is TrainConfig.clip ("smf" or
    "torch"). The train dataset yields {"input_ids": [...]} (TokenizedTexts does); the
    default collator is the loop's. Everything else is the Trainer's.
    """

    loss_is_scaled_for_ga = True  # compute_loss weights each micro-batch as the loop does

    def __init__(
        self,
        model: nn.Module | None = None,
        args: TrainingArguments | None = None,
        *,
        background: BackgroundStats | None = None,
        selection: RowSelection | None = None,
        optimizer: str | None = None,
        loss_weighting: str | None = None,
        clip: str = "smf",
        **kwargs,
    ):
        settings: SelectionSettings | None = getattr(model, "smf_config", None)
        if settings is None and (selection is None or optimizer is None):
            raise ValueError(
                "SMFTrainer needs an SMF model (smf.get_smf_model or smf.from_pretrained "
                "with is_trainable=True) or explicit selection= and optimizer="
            )
        self.smf_optimizer = optimizer or settings.optimizer
        weighting = loss_weighting or getattr(settings, "loss_weighting", "micro_batch_mean")
        selection = selection or settings.row_selection(background)
        if kwargs.get("data_collator") is None:
            tok = kwargs.get("processing_class")
            pad = getattr(tok, "pad_token_id", None)
            kwargs["data_collator"] = collator(pad if pad is not None else 0)
        super().__init__(model=model, args=args, **kwargs)
        self.model_accepts_loss_kwargs = False  # the loss is weighted here, not by the model
        self.smf_train_config = train_config(self.args, weighting, clip)
        self.sparse = SparseStep(self.model, selection)
        self._weights: list[float] = []

    # ------------------------------------------------------------------ data: the loop's order

    def _get_train_sampler(self, train_dataset: Dataset | None = None) -> Sampler:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        cfg = self.smf_train_config
        if cfg.group_by_length:
            lengths = [len(dataset[i]["input_ids"]) for i in range(len(dataset))]
        else:
            lengths = [0] * len(dataset)
        return PlanSampler(lengths, cfg)

    def get_batch_samples(self, epoch_iterator, num_batches: int, device: torch.device):
        batches, num_items = super().get_batch_samples(epoch_iterator, num_batches, device)
        # losses each micro-batch carries: a causal LM predicts every labelled token but the first
        n = [int((b["labels"][..., 1:] != -100).sum()) for b in batches]
        self._weights = weights_of_counts(n, self.smf_train_config.loss_weighting)
        return batches, num_items

    # ------------------------------------------------------- the step: count, select, restrict

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not model.training or not self._weights:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if "attention_mask" not in inputs:
            raise ValueError("SMFTrainer counts real tokens: batches need an attention_mask")
        smf_model = self.accelerator.unwrap_model(model)
        with self.sparse.recording(smf_model):
            outputs = model(**inputs)
            self.sparse.count(smf_model, inputs)
        loss = outputs.loss * self._weights.pop(0)
        return (loss, outputs) if return_outputs else loss

    def _finish_gradients(self) -> torch.Tensor:
        """After the last micro-batch: select and restrict (SMF), then clip as the loop does."""
        self.sparse.restrict()
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        return clip_step(self.model, params, self.smf_train_config)

    def _clip_grad_norm(self, model):
        return self._finish_gradients()

    def _get_grad_norm(self, model, grad_norm=None):
        return self._finish_gradients() if grad_norm is None else grad_norm

    def train(self, *args, **kwargs):
        with self.sparse.hooks():
            return super().train(*args, **kwargs)

    # ---------------------------------------------- optimizer and schedule: the pipeline's own

    def create_optimizer(self, model=None):
        if self.optimizer is None:
            _, self.optimizer = setup_smf(self.model, self.smf_train_config, self.smf_optimizer)
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.lr_scheduler is None:
            warmup = self.args.get_warmup_steps(num_training_steps)
            cfg = dataclasses.replace(self.smf_train_config, warmup_steps=warmup)
            self.lr_scheduler = make_scheduler(optimizer or self.optimizer, cfg, num_training_steps)
            self._created_lr_scheduler = True
        return self.lr_scheduler

    # ------------------------------------------------------------- checkpoints: the memory only

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        save_memory(self.accelerator.unwrap_model(self.model), Path(output_dir) / MEMORY_FILE)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)
        torch.save(self.args, os.path.join(output_dir, TRAINING_ARGS_NAME))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        path = Path(resume_from_checkpoint) / MEMORY_FILE
        if not path.is_file():
            raise FileNotFoundError(f"not an SMF checkpoint (no {MEMORY_FILE}): {path.parent}")
        load_memory_tensors(self.accelerator.unwrap_model(model or self.model), path)
