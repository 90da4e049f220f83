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

from smf.artifacts import ArtifactError, file_sha256, read_json, rebuild_hint
from smf.method.retrofit import config_path


def memory_shape(memory_path: str | Path) -> dict[int, int]:
    """Slots per memory layer, from the memory's saved config (memory.json next to it)."""
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
