"""What the stages share: atomic JSON and JSONL writes, reading texts, dtype names, the
environment a run records."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import torch

from smf.data import sources


def write_json(obj: dict, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    tmp.replace(path)


def write_log(records: list[dict], path: str | Path) -> None:
    sources.write_jsonl(records, path)


def texts_of(path: str | Path) -> list[str]:
    return [r["text"] for r in sources.read_jsonl(path)]


def torch_dtype(name: str) -> torch.dtype:
    try:
        return getattr(torch, name)
    except AttributeError:
        raise ValueError(f"unknown dtype {name!r} (use float32, bfloat16 or float16)") from None


def environment() -> dict:
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
