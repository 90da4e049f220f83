"""Resumable training state: trainable tensors, optimizer, scheduler and RNG in one folder.

A save never leaves the folder without a complete checkpoint: the new state is written beside
it, the old one is renamed aside, the new one renamed in, and only then is the old one deleted.
A kill between the two renames leaves the previous checkpoint under `checkpoint.old`, which
`saved_checkpoint` (and so the next resume) falls back to.

A checkpoint belongs to exactly one run, named by a fingerprint of its parameters; a folder
holding another run's state is discarded rather than resumed. Optimizer, scheduler and RNG
state are loaded with `weights_only=True` (tensors and plain containers only, never code).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

CHECKPOINT_FOLDERS = ("checkpoint", "checkpoint.old", "checkpoint.tmp")


def clear_checkpoint(work_dir: str | Path) -> None:
    """Remove every checkpoint folder of `work_dir` (a finished run's are dead weight)."""
    for name in CHECKPOINT_FOLDERS:
        shutil.rmtree(Path(work_dir) / name, ignore_errors=True)


def saved_checkpoint(work_dir: str | Path) -> Path | None:
    """The complete checkpoint folder a resume in `work_dir` would load, if any."""
    for name in ("checkpoint", "checkpoint.old"):
        path = Path(work_dir) / name
        if (path / "meta.json").is_file():
            return path
    return None


class Checkpointer:
    """Saves trainable tensors + optimizer/scheduler/RNG state into `work_dir/checkpoint`."""

    def __init__(self, work_dir: str | Path, fingerprint: str):
        self.dir = Path(work_dir)
        self.fingerprint = fingerprint

    @property
    def path(self) -> Path:
        return self.dir / "checkpoint"

    def save(self, model, optimizer, scheduler, step: int, log: list[dict]) -> None:
        tmp = self.dir / "checkpoint.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        tensors = {
            n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad
        }
        save_file(tensors, str(tmp / "trainable.safetensors"))
        torch.save(
            {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            },
            tmp / "state.pt",
        )
        meta = {"fingerprint": self.fingerprint, "step": step}
        (tmp / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
        (tmp / "meta.json").write_text(json.dumps(meta))  # last: marks the folder complete
        old = self.dir / "checkpoint.old"
        if (self.path / "meta.json").is_file():
            shutil.rmtree(old, ignore_errors=True)
            self.path.replace(old)
        else:
            shutil.rmtree(self.path, ignore_errors=True)  # an incomplete folder
        tmp.replace(self.path)
        shutil.rmtree(old, ignore_errors=True)

    def load(self, model, optimizer, scheduler) -> tuple[int, list[dict]]:
        """Restore state if a checkpoint of this exact run exists; returns (step, log)."""
        saved = saved_checkpoint(self.dir)
        if saved is None:
            return 0, []
        if saved != self.path:  # a save was cut between its two renames
            shutil.rmtree(self.path, ignore_errors=True)
            saved.replace(self.path)
        meta = json.loads((self.path / "meta.json").read_text())
        if meta.get("fingerprint") != self.fingerprint:
            shutil.rmtree(self.path)  # another config's state: never resume it
            return 0, []
        tensors = load_file(str(self.path / "trainable.safetensors"))
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, t in tensors.items():
                params[name].copy_(t)
        # weights_only: a state.pt restored from elsewhere cannot run code when unpickled
        state = torch.load(self.path / "state.pt", weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        if state["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        log = [json.loads(line) for line in (self.path / "log.jsonl").read_text().splitlines()]
        return int(meta["step"]), log

    def clear(self) -> None:
        clear_checkpoint(self.dir)
