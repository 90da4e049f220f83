"""Training precision: what dtype each stage loads its weights in, and what the forward runs in.

- fp32: everything in float32 (CPU profiles; the reference for determinism).
- bf16_autocast: the forward runs under bf16 autocast; weights that train stay float32 (master
  weights), frozen weights (SMF's and LoRA's base, the base during recovery) are held in bf16
  on a GPU. Memory parameters keep their own dtype (`RetrofitConfig.memory_dtype`).
- bf16: as bf16_autocast, but the weights that train are bf16 too: paper 3's code trains full
  finetuning this way (its SMF and LoRA keep fp32 trainable weights).
- paper3_bf16 (SMF only): paper 3's sparse stage. The whole model is cast to bf16 on every
  device, the memory and floating buffers (rotary frequencies) included; slot scores and softmax
  weights are bf16; the value tables (and trained alphas) are rounded to bf16, then held in
  float32 for the update (smf.method.retrofit.to_paper3_bf16); the forward runs under bf16
  autocast.

On a GPU, TF32 tensor cores are allowed for whatever stays float32 (not under paper3_bf16).
"""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("fp32", "bf16_autocast", "bf16", "paper3_bf16")


def check(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


def load_dtype(precision: str, trains_base: bool, device: torch.device) -> torch.dtype:
    """dtype to load the base weights in. Frozen weights go bf16 only on a GPU: a CPU has no
    fast bf16 matmul, so CPU runs keep float32 weights even under autocast."""
    check(precision)
    if precision == "paper3_bf16":  # paper 3's bf16 model, also on a CPU (exact, slow)
        return torch.bfloat16
    if precision == "bf16":
        return torch.bfloat16 if trains_base or device.type == "cuda" else torch.float32
    if precision == "bf16_autocast" and not trains_base and device.type == "cuda":
        return torch.bfloat16
    return torch.float32


def memory_bf16(precision: str) -> bool:
    """Whether the memory computes as paper 3's bf16 memory does (smf.method.retrofit)."""
    return check(precision) == "paper3_bf16"


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The forward pass's context: bf16 autocast unless fp32."""
    if check(precision) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def allow_tf32(device: torch.device, precision: str = "fp32") -> None:
    """TF32 for float32 matmuls and convolutions on CUDA (no effect on a CPU); not for
    paper3_bf16, whose Trainer leaves torch's defaults (no TF32 for matmuls)."""
    if device.type == "cuda" and check(precision) != "paper3_bf16":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
