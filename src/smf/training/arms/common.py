"""What every arm kind shares: a run's inputs (`ArmRun`) and result (`Trainable`), the device,
AdamW, freezing, and the retrofit stage's recovery (not an arm: every memory parameter trains
densely, the base stays frozen).

torch is imported inside the functions, so importing this module never loads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn
    from transformers import PreTrainedModel

    from smf.training.config import RowSelection, TrainConfig


@dataclass(frozen=True)
class ArmRun:
    """What a kind's `setup` starts from: one arm x seed of the finetune stage."""

    arm: str  # the arm's name: its config is `arms.<arm>` (errors name that key)
    config: Mapping  # the arm's config section (kind, train, and the kind's own section)
    train: TrainConfig
    base_dir: str | Path
    device: torch.device
    memory_path: str | Path | None = None  # kinds with needs_retrofit: the retrofit's memory
    background_path: str | Path | None = None  # and its background statistics

    def load_base(self, trains_base: bool) -> PreTrainedModel:
        """The base model on the run's device, in the dtype the run's precision gives weights
        that train (`trains_base`) or stay frozen (smf.training.precision)."""
        from transformers import AutoModelForCausalLM

        from smf.training import precision

        dtype = precision.load_dtype(self.train.precision, trains_base, self.device)
        return AutoModelForCausalLM.from_pretrained(self.base_dir, dtype=dtype).to(self.device)


@dataclass
class Trainable:
    """What a kind's `setup` returns: the model to train and its optimizer."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    selection: RowSelection | None = None  # SMF: which memory rows each step may change


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA without one is an error, not a fallback."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"config asks for device {name!r} but no CUDA GPU is visible; "
            "run the paper profile on a GPU machine or set `device: cpu` (slow)"
        )
    return torch.device(name)


def adamw(params, cfg: TrainConfig) -> torch.optim.AdamW:
    import torch

    params = list(params)
    fused = all(p.is_cuda for p in params) or None
    return torch.optim.AdamW(
        params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay, fused=fused
    )


def freeze(model: nn.Module) -> None:
    for p in model.parameters():
        p.requires_grad_(False)


def setup_recovery(model: PreTrainedModel, cfg: TrainConfig):
    """Memory warm-up: every memory parameter trains densely, the base stays frozen."""
    from smf.method.retrofit import memory_blocks, set_sparse_values

    freeze(model)
    params = []
    for block in memory_blocks(model).values():
        for name, p in block.named_parameters():
            if not name.startswith("mlp."):
                p.requires_grad_(True)
                params.append(p)
    if not params:
        raise ValueError("recovery needs a retrofitted model (no memory layers found)")
    set_sparse_values(model, False)
    return model, adamw(params, cfg)
