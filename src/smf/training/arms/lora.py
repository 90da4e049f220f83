"""LoRA: PEFT adapters on the frozen base; the artifact is the adapter folder, merged into the
base weights for evaluation."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from smf.training.arms.common import ArmRun, Trainable, adamw
from smf.training.arms.registry import ArmKind, register

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

    from smf.training.config import TrainConfig


def setup_lora(model: PreTrainedModel, cfg: TrainConfig, lora: dict):
    """Wrap the base model with PEFT LoRA; `lora` holds LoraConfig fields (r, lora_alpha, ...)."""
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **lora))
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    return peft_model, adamw(trainable, cfg)


class Lora(ArmKind):
    def setup(self, run: ArmRun) -> Trainable:
        model = run.load_base(trains_base=False)
        return Trainable(*setup_lora(model, run.train, run.config["lora"]))

    # save: a PeftModel's save_pretrained writes only its adapter

    def load(
        self, base_dir: str | Path, artifact: str | Path, dtype: torch.dtype
    ) -> PreTrainedModel:
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype)
        return PeftModel.from_pretrained(base, artifact).merge_and_unload()

    def check_config(self, key: str, spec: Mapping, config: Mapping) -> None:
        if "lora" not in spec:
            raise ValueError(f"{key}: kind lora needs a `lora:` section")


LORA = register(Lora("lora", artifact="adapter", artifact_is_dir=True))
