"""Full finetuning: every base weight trains (AdamW); the artifact is the model's HF folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from smf.training.arms.common import ArmRun, Trainable, adamw
from smf.training.arms.registry import ArmKind, register

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

    from smf.training.config import TrainConfig


def setup_full(model: PreTrainedModel, cfg: TrainConfig, gradient_checkpointing: bool = False):
    for p in model.parameters():
        p.requires_grad_(True)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    return model, adamw(model.parameters(), cfg)


class Full(ArmKind):
    def setup(self, run: ArmRun) -> Trainable:
        model = run.load_base(trains_base=True)
        checkpointing = run.config.get("gradient_checkpointing", False)
        return Trainable(*setup_full(model, run.train, checkpointing))

    def load(
        self, base_dir: str | Path, artifact: str | Path, dtype: torch.dtype
    ) -> PreTrainedModel:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(artifact, dtype=dtype)


FULL = register(Full("full", artifact="model", artifact_is_dir=True))
