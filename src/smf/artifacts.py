"""Cached artifacts on disk: safetensors and JSON written atomically and read back with errors
that name the file, what was expected, and how to rebuild it (every layer uses these)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

HASH_CHUNK = 1 << 20


class ArtifactError(RuntimeError):
    """A cached artifact is unreadable or was computed from something else; says how to fix."""


def rebuild_hint(path: str | Path) -> str:
    return (
        f"Rebuild it: `rm {path}` and run the same snakemake command again (the rule that "
        "writes it reruns, then everything that depends on it)."
    )


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_tensors(
    path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]
) -> None:
    """safetensors file with byte-identical output for identical input, written atomically.

    safetensors keeps header metadata in a hash map whose order changes from process to
    process, so the same tensors gave files with different bytes (and sha256, which provenance
    records). The header is rewritten with the metadata keys sorted; tensor offsets are
    relative to the data block, so only the header changes."""
    data = safetensors_bytes(tensors, metadata=metadata)
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    ordered = {"__metadata__": dict(sorted(header.pop("__metadata__", {}).items()))}
    ordered.update(header)  # the tensors, in safetensors' own (deterministic) order
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)  # safetensors pads its header to 8 bytes with spaces
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(len(text).to_bytes(8, "little") + text + data[8 + n :])
    tmp.replace(path)


def read_tensors(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """`load_file` with an error that names the file when it is missing, truncated or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: {what} not found. {rebuild_hint(path)}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ArtifactError(
            f"{path}: unreadable {what} (safetensors: {err}); the file is truncated or "
            f"corrupt ({path.stat().st_size} bytes). {rebuild_hint(path)}"
        ) from err


def read_metadata(path: str | Path, what: str) -> dict[str, str]:
    """The safetensors header metadata, with the same errors as `read_tensors`."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: {what} not found. {rebuild_hint(path)}")
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise ArtifactError(
            f"{path}: unreadable {what} (safetensors: {err}); the file is truncated or "
            f"corrupt. {rebuild_hint(path)}"
        ) from err


def read_json(path: str | Path, what: str) -> dict:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path}: {what} not found. {rebuild_hint(path)}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ArtifactError(f"{path}: unreadable {what} ({err}). {rebuild_hint(path)}") from err
