"""The arm-kind registry: what the rules, stages and tools ask about a kind of arm.

A kind (full finetuning, LoRA, SMF, or one of your own) is an `ArmKind` that its module
registers once, when imported, the way a PEFT tuner registers itself; nothing else in the
pipeline names kinds. The rules read `artifact` (what a run writes in its folder),
`artifact_is_dir` and `needs_retrofit` (whether a run trains on the retrofitted model, so its
inputs include the memory and its background statistics); the stages call `setup`, `save`
and `load`, and the config checks `check_config`.

A kind of your own lives in a module the config lists under `arm_kind_modules` (a dotted
module name, or a .py file relative to the working directory):

    from transformers import AutoModelForCausalLM
    from smf.training.arms import ArmKind, Trainable, adamw, freeze, register

    class NormsOnly(ArmKind):
        def setup(self, run):  # run: ArmRun (the arm's config, TrainConfig, inputs, device)
            model = run.load_base(trains_base=True)
            freeze(model)
            params = [p for n, p in model.named_parameters() if "norm" in n]
            for p in params:
                p.requires_grad_(True)
            return Trainable(model, adamw(params, run.train))

        def load(self, base_dir, artifact, dtype):  # save: save_pretrained (a folder artifact)
            return AutoModelForCausalLM.from_pretrained(artifact, dtype=dtype)

    register(NormsOnly("norms_only", artifact="model", artifact_is_dir=True))

Importing this module, or a built-in kind's, never loads torch: Snakemake reads the registry
while it builds the DAG.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn
    from transformers import PreTrainedModel

    from smf.training.arms.common import ArmRun, Trainable

MODULES_KEY = "arm_kind_modules"  # the config key listing modules that register kinds


@dataclass(frozen=True)
class ArmKind:
    """One kind of arm. Subclass it, override `setup` and `load` (and `save` for an artifact
    that is not a save_pretrained folder), and `register` an instance."""

    name: str
    artifact: str  # file or folder a run writes under runs/{arm}/seed{seed}/
    artifact_is_dir: bool
    needs_retrofit: bool = False  # trains on the retrofitted model (memory + background inputs)

    def setup(self, run: ArmRun) -> Trainable:
        """The model to train (on `run.device`) and its optimizer, from the run's inputs and
        its `arms.<arm>` config."""
        raise NotImplementedError(f"arm kind {self.name!r} does not define setup")

    def save(self, model: nn.Module, artifact: Path) -> None:
        """Write the trained model's artifact at `artifact` (its parent folder exists)."""
        if not self.artifact_is_dir:
            raise NotImplementedError(f"arm kind {self.name!r} saves a file: define save")
        model.save_pretrained(artifact)

    def load(
        self, base_dir: str | Path, artifact: str | Path, dtype: torch.dtype
    ) -> PreTrainedModel:
        """The model an evaluation scores, from the base folder and the saved artifact (on the
        CPU; the caller moves it and switches it to eval mode)."""
        raise NotImplementedError(f"arm kind {self.name!r} does not define load")

    def check_config(self, key: str, spec: Mapping, config: Mapping) -> None:
        """Cross-key checks of one arm's config `spec` (at `key`, e.g. `arms.lora`) against the
        whole config, before any job starts: raise ValueError("<key.path>: <cause>")."""


KINDS: dict[str, ArmKind] = {}


def register(kind: ArmKind) -> ArmKind:
    if not isinstance(kind, ArmKind):
        raise TypeError(f"register takes an ArmKind, not {type(kind).__name__}")
    if kind.name in KINDS and KINDS[kind.name] != kind:
        raise ValueError(f"arm kind {kind.name!r} is already registered")
    KINDS[kind.name] = kind
    return kind


def kind_of(name: str, key: str | None = None) -> ArmKind:
    """The registered kind `name`; an unknown one is a ValueError naming `key` when given."""
    try:
        return KINDS[name]
    except KeyError:
        where = f"{key}: " if key else ""
        raise ValueError(
            f"{where}unknown arm kind {name!r}; the registered kinds are {sorted(KINDS)} (a "
            f"kind of your own is registered by a module listed in `{MODULES_KEY}`)"
        ) from None


def import_kinds(modules: Iterable[str]) -> None:
    """Import the modules that register kinds: dotted names, or paths of .py files (relative
    to the working directory). Importing one twice does nothing."""
    for entry in modules:
        try:
            if entry.endswith(".py"):
                import_file(Path(entry))
            else:
                importlib.import_module(entry)
        except (ImportError, OSError) as err:
            raise ValueError(f"{MODULES_KEY}: cannot import {entry!r}: {err}") from err


def import_file(path: Path) -> None:
    path = path.resolve()
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    name = f"smf_arm_kinds_{path.stem}_{digest}"
    if name in sys.modules:
        return
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
