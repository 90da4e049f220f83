"""Resumable training state: trainable tensors, optimizer, scheduler and RNG in one folder.

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
        (tmp / "meta.json").write_text(json.dumps(meta))
        (tmp / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
        shutil.rmtree(self.path, ignore_errors=True)
        tmp.replace(self.path)

    def load(self, model, optimizer, scheduler) -> tuple[int, list[dict]]:
        """Restore state if a checkpoint of this exact run exists; returns (step, log)."""
        meta_file = self.path / "meta.json"
        if not meta_file.is_file():
            return 0, []
        meta = json.loads(meta_file.read_text())
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
        shutil.rmtree(self.path, ignore_errors=True)
