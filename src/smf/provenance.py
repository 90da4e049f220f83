"""What an artifact was computed from, and the checks a consumer runs before trusting it.

Snakemake reruns a job when its inputs are newer, not when they are wrong: statistics of a
memory of another size, or a truncated safetensors file, reach the consumer unnoticed. These
helpers record a fingerprint of the producer's inputs in the artifact and turn a mismatch or an
unreadable file into an error that names the file, what was expected, what was found, and how
to rebuild it.
"""

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


def memory_shape(memory_path: str | Path) -> dict[int, int]:
    """Slots per memory layer, from the memory's saved config (memory.json next to it)."""
    from smf.retrofit import config_path

    cfg = read_json(config_path(memory_path), "memory config")
    try:
        slots = int(cfg["memory"]["n_keys"]) ** 2
        return {int(layer): slots for layer in cfg["layers"]}
    except (KeyError, TypeError, ValueError) as err:
        raise ArtifactError(
            f"{config_path(memory_path)}: not a memory config (missing {err}). "
            f"{rebuild_hint(memory_path)}"
        ) from err


def base_identity(base_dir: str | Path) -> dict:
    """The base model an artifact was computed from: its folder and its config's hash."""
    base_config = Path(base_dir) / "config.json"
    return {
        "base": str(base_dir),
        "base_config_sha256": file_sha256(base_config) if base_config.is_file() else None,
    }


def background_provenance(base_dir: str | Path, memory_path: str | Path, settings: dict) -> dict:
    """What background statistics are computed from: memory (shape, hash), base, settings."""
    return {
        "memory_path": str(memory_path),
        "memory_sha256": file_sha256(memory_path),
        "slots": {str(k): v for k, v in memory_shape(memory_path).items()},
        **base_identity(base_dir),
        "settings": settings,
        "fingerprint": hashlib.sha256(
            json.dumps([str(memory_path), settings], sort_keys=True).encode()
        ).hexdigest()[:16],
    }


def check_background(stats, stats_path: str | Path, memory_path: str | Path) -> None:
    """Stop unless `stats` (BackgroundStats) were computed for the memory at `memory_path`."""
    expected = memory_shape(memory_path)
    found = {int(layer): len(reads) for layer, reads in stats.reads.items()}
    if found != expected:
        raise ArtifactError(
            f"{stats_path}: background statistics do not match the memory {memory_path}: "
            f"expected slots per layer {expected}, found {found}. {rebuild_hint(stats_path)}"
        )
    recorded = (stats.provenance or {}).get("memory_sha256")
    if recorded is not None:
        actual = file_sha256(memory_path)
        if recorded != actual:
            raise ArtifactError(
                f"{stats_path}: background statistics were computed from another memory: "
                f"expected memory sha256 {actual[:16]}… ({memory_path}), found "
                f"{recorded[:16]}…. {rebuild_hint(stats_path)}"
            )
