"""The finetuning arms: how each one prepares its model and optimizer, saves and reloads.

- full: every base weight trains (AdamW).
- lora: PEFT adapters on the base model; merged into the weights for evaluation.
- smf: the retrofitted model with only memory value rows trainable, updated sparsely.
- recovery (not an arm, the retrofit stage): all memory parameters train densely, base frozen.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForCausalLM, PreTrainedModel

from smf.method.retrofit import (
    load_retrofitted,
    memories,
    memory_blocks,
    save_memory,
    set_sparse_values,
)
from smf.method.sparse_optim import make_optimizer, needs_sparse_grad
from smf.training.config import TrainConfig

KINDS = ("full", "lora", "smf")


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA without one is an error, not a fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"config asks for device {name!r} but no CUDA GPU is visible; "
            "run the paper profile on a GPU machine or set `device: cpu` (slow)"
        )
    return torch.device(name)


def adamw(params, cfg: TrainConfig) -> torch.optim.AdamW:
    params = list(params)
    fused = all(p.is_cuda for p in params) or None
    return torch.optim.AdamW(
        params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay, fused=fused
    )


def freeze(model: nn.Module) -> None:
    for p in model.parameters():
        p.requires_grad_(False)


def setup_full(model: PreTrainedModel, cfg: TrainConfig, gradient_checkpointing: bool = False):
    for p in model.parameters():
        p.requires_grad_(True)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    return model, adamw(model.parameters(), cfg)


def setup_lora(model: PreTrainedModel, cfg: TrainConfig, lora: dict):
    """Wrap the base model with PEFT LoRA; `lora` holds LoraConfig fields (r, lora_alpha, ...)."""
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **lora))
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    return peft_model, adamw(trainable, cfg)


def setup_smf(model: PreTrainedModel, cfg: TrainConfig, optimizer: str, train_alpha: bool = False):
    """Only the memory value tables train; with `train_alpha` also each layer's output scale
    (paper 3's "+S" arms), which takes dense updates and so needs masked_adamw."""
    freeze(model)
    values = [m.values for m in memories(model).values()]
    if not values:
        raise ValueError("SMF needs a retrofitted model (no memory layers found)")
    params = list(values)
    if train_alpha:
        if needs_sparse_grad(optimizer):
            raise ValueError(
                f"smf.train_alpha needs optimizer masked_adamw, not {optimizer!r}: the alphas "
                "take dense updates"
            )
        alphas = [b.alpha for b in memory_blocks(model).values()]
        if any(a is None for a in alphas):
            raise ValueError("smf.train_alpha needs an additive retrofit: replacement has no alpha")
        params += alphas
    for p in params:
        p.requires_grad_(True)
    set_sparse_values(model, needs_sparse_grad(optimizer))
    opt = make_optimizer(
        optimizer, params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay
    )
    return model, opt


def setup_recovery(model: PreTrainedModel, cfg: TrainConfig):
    """Memory warm-up: every memory parameter trains densely, the base stays frozen."""
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


def save_arm(kind: str, model: nn.Module, out_dir: str | Path) -> None:
    """full: HF weights; lora: the adapter; smf: memory.safetensors + memory.json."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if kind in ("full", "lora"):  # a PeftModel saves only its adapter
        model.save_pretrained(out_dir)
    elif kind == "smf":
        save_memory(model, out_dir / "memory.safetensors")
    else:
        raise ValueError(f"unknown arm kind {kind!r}; choose one of {KINDS}")


def load_for_eval(
    kind: str,
    base_dir: str | Path,
    artifact: str | Path | None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> PreTrainedModel:
    """The model an evaluation scores: base, retrofit (base + memory) or a finetuned arm."""
    if kind == "base":
        model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype)
    elif kind in ("retrofit", "smf"):
        model = load_retrofitted(base_dir, Path(artifact), dtype=dtype)
    elif kind == "full":
        model = AutoModelForCausalLM.from_pretrained(artifact, dtype=dtype)
    elif kind == "lora":
        from peft import PeftModel

        base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype)
        model = PeftModel.from_pretrained(base, artifact).merge_and_unload()
    else:
        raise ValueError(f"unknown model kind {kind!r}")
    return model.to(device).eval()
