"""The arm-kind registry: what the rules, stages and tools ask about a kind of arm.

A kind (full finetuning, LoRA, SMF, or one of your own) registers an `ArmKind` once; nothing
else in the pipeline names kinds. The rules read `artifact` (what a run writes in its folder)
and `needs_retrofit` (whether a run trains on the retrofitted model, so its inputs include the
memory and its background statistics).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArmKind:
    name: str
    artifact: str  # file or folder a run writes under runs/{arm}/seed{seed}/
    artifact_is_dir: bool
    needs_retrofit: bool = False  # trains on the retrofitted model (memory + background inputs)


KINDS: dict[str, ArmKind] = {}


def register(kind: ArmKind) -> ArmKind:
    if kind.name in KINDS and KINDS[kind.name] != kind:
        raise ValueError(f"arm kind {kind.name!r} is already registered")
    KINDS[kind.name] = kind
    return kind


def kind_of(name: str) -> ArmKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown arm kind {name!r}; choose one of {sorted(KINDS)}") from None


register(ArmKind("full", artifact="model", artifact_is_dir=True))
register(ArmKind("lora", artifact="adapter", artifact_is_dir=True))
register(ArmKind("smf", artifact="memory.safetensors", artifact_is_dir=False, needs_retrofit=True))
