"""Retrofit your own model, save and reload its memory: get_smf_model, save_pretrained,
from_pretrained, with the architectures SMF supports checked up front and a saved memory
refusing a base it was not built on."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForCausalLM, PreTrainedModel

from smf.api.config import SMFConfig
from smf.artifacts import read_json
from smf.method.retrofit import (
    RetrofitConfig,
    config_path,
    load_memory,
    memories,
    retrofit,
    save_memory,
    set_sparse_values,
)
from smf.method.sparse_optim import needs_sparse_grad
from smf.training.arms.common import freeze

# model_type -> the name users know; both keep their blocks in model.model.layers[i].mlp
SUPPORTED = {"qwen2": "Qwen2", "llama": "Llama"}
MEMORY_FILE = "memory.safetensors"  # next to it memory.json: the retrofit and SMF configs
# the base's config fields a memory depends on (widths, depth, vocabulary)
IDENTITY_FIELDS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
)
SAMPLES_PER_TENSOR = 4


def check_architecture(model: nn.Module) -> None:
    """Stop unless `model` is a decoder SMF supports (Qwen2, Llama), naming what it is."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED:
        names = " and ".join(SUPPORTED.values())
        raise ValueError(
            f"SMF supports {names} decoders; {type(model).__name__} "
            f"(model_type {model_type!r}) is not supported"
        )


@torch.no_grad()
def base_identity(model: PreTrainedModel) -> dict:
    """What a memory is built on: architecture, sizes, and a few values of every weight (read
    before the retrofit), so a different base is recognised without hashing gigabytes."""
    samples = {}
    for name, p in model.named_parameters():
        flat = p.detach().reshape(-1)
        last, n = flat.numel() - 1, SAMPLES_PER_TENSOR - 1
        idx = torch.tensor([k * last // n for k in range(n + 1)], device=flat.device)
        samples[name] = flat[idx].float().cpu().tolist()
    return {
        "architecture": type(model).__name__,
        "name_or_path": str(getattr(model.config, "_name_or_path", "")),
        "config": {k: getattr(model.config, k, None) for k in IDENTITY_FIELDS},
        "weights_sample": samples,
    }


def check_base(saved: dict, found: dict, where: Path) -> None:
    """Stop unless the base `found` is the one the memory at `where` was `saved` on. Weights
    may differ by a dtype's rounding (a bf16 load of the same base passes)."""
    built_on = f"{saved.get('architecture')} {saved.get('name_or_path')!r}"
    given = f"{found['architecture']} {found['name_or_path']!r}"
    problems = []
    if saved.get("architecture") != found["architecture"]:
        problems.append(f"architecture {saved.get('architecture')} != {found['architecture']}")
    for key, value in saved.get("config", {}).items():
        if found["config"].get(key) != value:
            problems.append(f"config.{key} {value} != {found['config'].get(key)}")
    want, have = saved.get("weights_sample", {}), found["weights_sample"]
    differ = [
        name
        for name, values in want.items()
        if name not in have
        or not torch.allclose(torch.tensor(have[name]), torch.tensor(values), 1e-2, 1e-3)
    ]
    if differ:
        problems.append(f"weights differ in {differ[0]} (and {len(differ) - 1} more tensors)")
    if problems:
        raise ValueError(
            f"the SMF memory in {where} was built on {built_on}, not on the base given "
            f"({given}): {'; '.join(problems)}. Load it on the base it was trained on."
        )


def prepare(model: nn.Module, config: SMFConfig | None, trainable: bool) -> nn.Module:
    """Freeze the base; with `trainable`, the value tables train as `config.optimizer` needs
    (sparse gradients for the sparse optimizers), as smf.training.arms.setup_smf sets them."""
    freeze(model)
    if trainable:
        if config is None:
            raise ValueError("this memory carries no SMF config: it cannot be trained further")
        for m in memories(model).values():
            m.values.requires_grad_(True)
        set_sparse_values(model, needs_sparse_grad(config.optimizer))
    else:
        set_sparse_values(model, False)
        model.eval()
    model.smf_config = config
    return model


def get_smf_model(model: PreTrainedModel, config: SMFConfig) -> PreTrainedModel:
    """Attach memories to `model` in place as `config` says and return it, ready to train:
    the base frozen, only the memory value tables trainable. Its logits are bit-identical to
    the base's until it trains (additive mode: the memory's output projection starts at 0)."""
    check_architecture(model)
    identity = base_identity(model)
    retrofit(model, config.retrofit_config(model.config.hidden_size, identity), seed=config.seed)
    return prepare(model, config, trainable=True)


def save_pretrained(model: nn.Module, directory: str | Path) -> Path:
    """Write the memory only: `directory/memory.safetensors` and `memory.json` (the retrofit,
    the SMF config and the base's identity). Returns the safetensors path."""
    if getattr(model, "smf_retrofit", None) is None:
        raise ValueError("model has no SMF memory: make it with smf.get_smf_model")
    path = Path(directory) / MEMORY_FILE
    save_memory(model, path)
    return path


def from_pretrained(
    base: PreTrainedModel | str | Path,
    directory: str | Path,
    *,
    is_trainable: bool = False,
    dtype: torch.dtype | None = None,
    **kwargs,
) -> PreTrainedModel:
    """`base` (a model, or a folder or hub id `from_pretrained` reads with `dtype`, `kwargs`)
    with the memory saved in `directory`; refuses a base the memory was not built on. Frozen
    and in eval mode unless `is_trainable`."""
    path = Path(directory) / MEMORY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no SMF memory in {directory} (expected {path})")
    if isinstance(base, str | Path):
        base = AutoModelForCausalLM.from_pretrained(base, dtype=dtype, **kwargs)
    check_architecture(base)
    extra = RetrofitConfig.from_dict(read_json(config_path(path), "memory config")).extra
    if extra.get("base"):
        check_base(extra["base"], base_identity(base), Path(directory))
    load_memory(base, path)
    config = SMFConfig.from_dict(extra["smf"]) if "smf" in extra else None
    return prepare(base, config, trainable=is_trainable)
