"""The finetuning arms, one module per kind, each registering itself (see .registry): full,
lora and smf; the retrofit stage's recovery and what kinds share are in .common.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from smf.training.arms import full, lora, smf  # noqa: F401  (each registers its kind)
from smf.training.arms.common import (
    ArmRun,
    Trainable,
    adamw,
    freeze,
    resolve_device,
    setup_recovery,
)
from smf.training.arms.full import setup_full
from smf.training.arms.lora import setup_lora
from smf.training.arms.registry import KINDS, ArmKind, import_kinds, kind_of, register
from smf.training.arms.smf import setup_smf

if TYPE_CHECKING:
    import torch
    from torch import nn
    from transformers import PreTrainedModel

__all__ = [
    "KINDS", "ArmKind", "ArmRun", "Trainable", "adamw", "artifact_path", "freeze",
    "import_kinds", "kind_of", "load_for_eval", "register", "resolve_device", "save_arm",
    "setup_full", "setup_lora", "setup_recovery", "setup_smf",
]  # fmt: skip


def artifact_path(kind: ArmKind, out_dir: str | Path) -> Path:
    """Where a run saves its artifact: `out_dir` itself for a folder artifact, the artifact's
    file in `out_dir` otherwise (the finetune stage's `out_dir`)."""
    out_dir = Path(out_dir)
    return out_dir if kind.artifact_is_dir else out_dir / kind.artifact


def save_arm(kind: str, model: nn.Module, out_dir: str | Path) -> Path:
    """Save a trained arm's artifact (full: HF weights; lora: the adapter; smf:
    memory.safetensors + memory.json); returns its path."""
    arm_kind = kind_of(kind)
    path = artifact_path(arm_kind, out_dir)
    (path if arm_kind.artifact_is_dir else path.parent).mkdir(parents=True, exist_ok=True)
    arm_kind.save(model, path)
    return path


def load_for_eval(
    kind: str,
    base_dir: str | Path,
    artifact: str | Path | None,
    dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
) -> PreTrainedModel:
    """The model an evaluation scores: base, retrofit (base + memory) or a finetuned arm of a
    registered kind; float32 unless `dtype` is given."""
    import torch
    from transformers import AutoModelForCausalLM

    from smf.method.retrofit import load_retrofitted

    dtype = torch.float32 if dtype is None else dtype
    if kind == "base":
        model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype)
    elif kind == "retrofit":
        model = load_retrofitted(base_dir, Path(artifact), dtype=dtype)
    else:
        model = kind_of(kind).load(base_dir, artifact, dtype)
    return model.to(device).eval()
