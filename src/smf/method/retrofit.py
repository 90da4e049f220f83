"""Attach product-key memories to a pretrained Hugging Face decoder, save and load them.

Works on any decoder whose blocks live in a `ModuleList` (`model.model.layers` for
Qwen2/Llama/Mistral, `transformer.h` for GPT-2 style) and have an MLP attribute (`mlp`).
Only the memory is ever saved: the base weights stay where they came from.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForCausalLM, PreTrainedModel

from smf.artifacts import read_json, read_tensors, write_tensors
from smf.method.memory import MemoryConfig, ProductKeyMemory

MODES = ("additive", "replacement")


@dataclass
class RetrofitConfig:
    """Where memories go and how they join the residual stream."""

    layers: list[int]
    memory: MemoryConfig
    mode: str = "additive"  # additive: MLP(x) + alpha*memory(x); replacement: memory(x) only
    alpha_init: float = 1.0  # paper 3's code uses 0.01 (with zero_init_output false)
    zero_init_output: bool = True  # additive starts bit-identical to the base model
    mlp_attr: str = "mlp"
    memory_dtype: str = "float32"  # memory parameters train in fp32 even in a bf16 model
    extra: dict = field(default_factory=dict)  # free-form provenance (base model id, ...)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"retrofit mode must be one of {MODES}, got {self.mode!r}")
        if not self.layers:
            raise ValueError("retrofit needs at least one layer index")
        if len(set(self.layers)) != len(self.layers):
            raise ValueError(f"duplicate retrofit layer indices: {self.layers}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["memory"] = self.memory.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RetrofitConfig:
        d = dict(d)
        d["memory"] = MemoryConfig.from_dict(d["memory"])
        return cls(**d)


class MemoryBlock(nn.Module):
    """Replaces a decoder block's MLP: `mlp(x) + alpha * memory(x)`, or `memory(x)` alone."""

    def __init__(self, mlp: nn.Module | None, memory: ProductKeyMemory, alpha_init: float):
        super().__init__()
        self.mlp = mlp
        self.memory = memory
        self.alpha = nn.Parameter(torch.tensor(float(alpha_init))) if mlp is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.memory.paper3_bf16:  # paper 3: memory(x) and alpha cast to x's dtype (bf16)
            mem = self.memory(x).to(x.dtype)
            return mem if self.mlp is None else self.mlp(x) + self.alpha.to(x.dtype) * mem
        mem_dtype = self.memory.values.dtype
        mem = self.memory(x.to(mem_dtype))
        if self.mlp is None:
            return mem.to(x.dtype)
        return self.mlp(x) + (self.alpha * mem).to(x.dtype)


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The model's list of decoder blocks, found structurally rather than by model name."""
    root = model.get_decoder() if hasattr(model, "get_decoder") else model
    for owner in (root, getattr(model, "model", None), getattr(model, "transformer", None)):
        if owner is None:
            continue
        for attr in ("layers", "h", "blocks"):
            layers = getattr(owner, attr, None)
            if isinstance(layers, nn.ModuleList):
                return layers
    raise ValueError(f"cannot find the decoder layers of {type(model).__name__}")


def retrofit(model: PreTrainedModel, config: RetrofitConfig, seed: int = 0) -> PreTrainedModel:
    """Attach memories in place at `config.layers`; returns the same model for chaining."""
    layers = decoder_layers(model)
    hidden = model.config.hidden_size
    if config.memory.hidden_size != hidden:
        raise ValueError(
            f"memory.hidden_size {config.memory.hidden_size} != model hidden size {hidden}"
        )
    bad = [i for i in config.layers if not 0 <= i < len(layers)]
    if bad:
        raise ValueError(
            f"retrofit layer indices {bad} are outside the model's {len(layers)} layers"
        )
    if memory_blocks(model):
        raise ValueError("model is already retrofitted")
    dtype = getattr(torch, config.memory_dtype)
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        for i in config.layers:
            block = layers[i]
            mlp = getattr(block, config.mlp_attr, None)
            if mlp is None:
                raise ValueError(f"layer {i} has no attribute {config.mlp_attr!r}")
            device = next(mlp.parameters()).device
            memory = ProductKeyMemory(config.memory, device=device).to(dtype)
            if config.mode == "additive":
                if config.zero_init_output:
                    nn.init.zeros_(memory.out.weight)
                    if memory.out.bias is not None:
                        nn.init.zeros_(memory.out.bias)
                new = MemoryBlock(mlp, memory, config.alpha_init)
            else:
                new = MemoryBlock(None, memory, config.alpha_init)
            setattr(block, config.mlp_attr, new.to(device))
    finally:
        torch.random.set_rng_state(gen_state)
    model.smf_retrofit = config
    return model


def memory_blocks(model: nn.Module) -> dict[int, MemoryBlock]:
    """Layer index -> MemoryBlock, in layer order."""
    try:
        layers = decoder_layers(model)
    except ValueError:
        return {}
    out = {}
    for i, block in enumerate(layers):
        for child in block.children():
            if isinstance(child, MemoryBlock):
                out[i] = child
    return out


def memories(model: nn.Module) -> dict[int, ProductKeyMemory]:
    """Layer index -> ProductKeyMemory."""
    return {i: b.memory for i, b in memory_blocks(model).items()}


def memory_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Memory tensors only, named `layers.{i}.memory.values`, `layers.{i}.alpha`, ..."""
    state = {}
    for i, block in memory_blocks(model).items():
        for name, tensor in block.state_dict().items():
            if not name.startswith("mlp."):
                state[f"layers.{i}.{name}"] = tensor
    return state


def save_memory(model: nn.Module, path: str | Path) -> None:
    """Write `<path>` (safetensors) and `<path minus .safetensors>.json` (RetrofitConfig)."""
    config: RetrofitConfig | None = getattr(model, "smf_retrofit", None)
    if config is None:
        raise ValueError("model has no memory to save (was it retrofitted?)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in memory_state_dict(model).items()}
    config_path(path).write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    write_tensors(path, state, {"format": "smf-memory", "config": json.dumps(config.to_dict())})


def config_path(memory_path: str | Path) -> Path:
    return Path(memory_path).with_suffix(".json")


def load_memory(model: PreTrainedModel, path: str | Path) -> PreTrainedModel:
    """Retrofit `model` with the saved config and load the saved memory tensors into it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"memory file not found: {path}")
    cfg_file = config_path(path)
    if not cfg_file.is_file():
        raise FileNotFoundError(f"memory config not found next to {path}: expected {cfg_file}")
    config = RetrofitConfig.from_dict(read_json(cfg_file, "memory config"))
    retrofit(model, config)
    return load_memory_tensors(model, path)


def load_memory_tensors(model: nn.Module, path: str | Path) -> nn.Module:
    """Copy the memory tensors saved at `path` into an already retrofitted `model`."""
    path = Path(path)
    state = read_tensors(path, "memory")
    expected = memory_state_dict(model)
    missing, unexpected = set(expected) - set(state), set(state) - set(expected)
    if missing or unexpected:
        raise ValueError(
            f"{path} does not match its config: missing {sorted(missing)}, "
            f"unexpected {sorted(unexpected)}"
        )
    with torch.no_grad():
        for name, tensor in expected.items():
            tensor.copy_(state[name])
    return model


def load_retrofitted(
    base: str | Path, memory_path: str | Path, dtype: torch.dtype | None = None, **kwargs
) -> PreTrainedModel:
    """Base weights from `base` (folder or hub id) plus the memory saved at `memory_path`."""
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype, **kwargs)
    return load_memory(model, memory_path)


def to_paper3_bf16(model: nn.Module, train_alpha: bool = False) -> None:
    """Paper 3's precision for the sparse stage. Its code casts the whole retrofitted model to
    bf16 (`model.to(bf16)`: every weight, the memory's included, and floating buffers such as
    the rotary inverse frequencies), loads the retrofit checkpoint into it, then casts the
    tensors that train (the value tables, and the alphas of its "+S" arms) back to float32.
    The memory then scores its slots in bf16 (`ProductKeyMemory.paper3_bf16`)."""
    model.to(torch.bfloat16)
    for block in memory_blocks(model).values():
        trains = [block.memory.values] + ([block.alpha] if train_alpha else [])
        for p in trains:
            if p is not None:
                p.data = p.data.float()
        block.memory.paper3_bf16 = True


def set_sparse_values(model: nn.Module, sparse: bool) -> None:
    """Switch the value tables between sparse (SMF) and dense (recovery, baseline) gradients."""
    for memory in memories(model).values():
        memory.sparse_values = sparse
