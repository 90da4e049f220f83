"""Slot-access counting: which memory rows a batch reads, and how often background text does.

Counts cover real tokens only: the caller passes the attention mask (or a loss mask), so
padding never inflates a slot's count. All per-batch work is proportional to the reads of
the batch (tokens x heads x k), never to the number of slots.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from smf.artifacts import read_metadata, read_tensors, write_tensors
from smf.method.retrofit import memories


@contextmanager
def recording(model: nn.Module) -> Iterator[None]:
    """Make every memory keep the slot indices of its last forward pass."""
    mems = memories(model)
    for m in mems.values():
        m.record = True
    try:
        yield
    finally:
        for m in mems.values():
            m.record = False
            m.last_indices = None


def read_slots(model: nn.Module, token_mask: torch.Tensor) -> dict[int, torch.Tensor]:
    """Flat slot indices read by the masked tokens of the last forward, per memory layer.

    `token_mask` is (batch, seq): 1 for tokens to count (the attention mask, or a loss mask).
    """
    out = {}
    mask = token_mask.bool()
    for layer, m in memories(model).items():
        if m.last_indices is None:
            raise RuntimeError(f"memory at layer {layer} recorded nothing: use `recording(model)`")
        out[layer] = m.last_indices[mask.to(m.last_indices.device)].reshape(-1)
    return out


class SlotCounter:
    """Accumulates slot reads over micro-batches; `counts()` gives (slots, counts) per layer."""

    def __init__(self) -> None:
        self._reads: dict[int, list[torch.Tensor]] = {}

    def add(self, model: nn.Module, token_mask: torch.Tensor) -> None:
        for layer, idx in read_slots(model, token_mask).items():
            self._reads.setdefault(layer, []).append(idx)

    def counts(self) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """Per layer: ascending unique slot ids and how often each was read (all > 0)."""
        return {
            layer: torch.unique(torch.cat(chunks), sorted=True, return_counts=True)
            for layer, chunks in self._reads.items()
        }

    def reset(self) -> None:
        self._reads.clear()


@dataclass
class BackgroundStats:
    """Per layer and slot: df (documents that read it) and reads (total reads), over n_docs."""

    n_docs: int
    doc_freq: dict[int, torch.Tensor]
    reads: dict[int, torch.Tensor]
    description: str = ""
    provenance: dict = field(default_factory=dict)  # what they were computed from

    def __post_init__(self) -> None:
        # sum_j a_j per layer, which KL selection needs every step: computed once, not O(N) each
        self.total_reads = {layer: int(r.sum()) for layer, r in self.reads.items()}

    def to(self, device: torch.device | str) -> BackgroundStats:
        """The same statistics on `device`: moved once, not copied at every selection."""
        return BackgroundStats(
            self.n_docs,
            {layer: t.to(device) for layer, t in self.doc_freq.items()},
            {layer: t.to(device) for layer, t in self.reads.items()},
            self.description,
            self.provenance,
        )

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {}
        for layer in self.doc_freq:
            tensors[f"layers.{layer}.doc_freq"] = self.doc_freq[layer].cpu().contiguous()
            tensors[f"layers.{layer}.reads"] = self.reads[layer].cpu().contiguous()
        meta = {"n_docs": str(self.n_docs), "description": self.description}
        if self.provenance:
            meta["provenance"] = json.dumps(self.provenance, sort_keys=True)
        write_tensors(path, tensors, meta)

    @classmethod
    def load(cls, path: str | Path) -> BackgroundStats:
        path = Path(path)
        meta = read_metadata(path, "background statistics")
        if "n_docs" not in meta:
            raise ValueError(f"{path} is not a background-statistics file (no n_docs metadata)")
        tensors = read_tensors(path, "background statistics")
        doc_freq, reads = {}, {}
        for name, t in tensors.items():
            _, layer, kind = name.split(".")
            (doc_freq if kind == "doc_freq" else reads)[int(layer)] = t
        provenance = json.loads(meta.get("provenance", "{}"))
        return cls(int(meta["n_docs"]), doc_freq, reads, meta.get("description", ""), provenance)

    def summary(self) -> dict:
        """Coverage numbers worth logging: share of slots ever read, top-1% read share."""
        out = {"n_docs": self.n_docs, "description": self.description, "layers": {}}
        for layer, reads in self.reads.items():
            total = int(reads.sum())
            top = reads.float().sort(descending=True).values
            k = max(1, len(top) // 100)
            out["layers"][layer] = {
                "slots": len(reads),
                "slots_read": int((reads > 0).sum()),
                "total_reads": total,
                "top1pct_read_share": float(top[:k].sum() / max(total, 1)),
            }
        return out


@torch.inference_mode()
def compute_background(
    model: nn.Module,
    tokenizer,
    documents: Sequence[str],
    *,
    max_length: int = 1024,
    batch_size: int = 8,
    description: str = "",
    progress: bool = True,
) -> BackgroundStats:
    """Run the model over documents (one document = one 'batch' of the method) and count."""
    mems = memories(model)
    if not mems:
        raise ValueError("model has no memory layers: retrofit it first")
    if not documents:
        raise ValueError("background corpus is empty")
    device = next(model.parameters()).device
    doc_freq = {i: torch.zeros(m.config.num_slots, dtype=torch.long) for i, m in mems.items()}
    reads = {i: torch.zeros(m.config.num_slots, dtype=torch.long) for i, m in mems.items()}
    model.eval()
    starts = range(0, len(documents), batch_size)
    with recording(model):
        for start in tqdm(starts, desc="background", disable=not progress):
            batch = tokenizer(
                list(documents[start : start + batch_size]),
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=max_length,
            ).to(device)
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            real = batch["attention_mask"].bool()
            for layer, m in mems.items():
                for row in range(real.shape[0]):  # one document at a time: df counts documents
                    idx = m.last_indices[row][real[row]].reshape(-1).cpu()
                    slots, counts = torch.unique(idx, return_counts=True)
                    doc_freq[layer][slots] += 1
                    reads[layer].index_add_(0, slots, counts)
    return BackgroundStats(len(documents), doc_freq, reads, description)
