"""Product-key memory layer (Lample et al. 2019; Berges et al. 2024; SMF papers 1-3).

A memory holds N = n_keys**2 value rows. Each token's query picks k rows through two
sub-key tables of n_keys rows each, so only 2*n_keys + k*k scores are computed per head,
never N. The read is a softmax-weighted sum of the k value rows (an embedding bag), which
makes the value table's gradient naturally sparse: only the rows a batch reads get one.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class MemoryConfig:
    """All sizes of one memory layer; round-trips through JSON."""

    hidden_size: int  # D: width of the residual stream the memory reads from and writes to
    n_keys: int = 128  # rows per sub-key table; N = n_keys**2 slots
    heads: int = 4  # H: independent queries, their reads are summed
    topk: int = 16  # k: slots read per head and token
    key_dim: int = 256  # K: query / product-key width (split in two halves)
    value_dim: int | None = None  # D_v; None means hidden_size
    swilu: bool = True  # Memory+ gating: out = W_o(read * silu(W_g x))
    query_bias: bool = True
    query_norm: bool = False  # LayerNorm on each head's query (no affine), padding-safe
    # paper 3's code: biases on the gate and output projections too, and every bias (query's
    # included) keeps nn.Linear's default init; ours: no projection biases, query bias zero
    paper3_biases: bool = False

    def __post_init__(self) -> None:
        if self.value_dim is None:
            self.value_dim = self.hidden_size
        for name in ("hidden_size", "n_keys", "heads", "topk", "key_dim", "value_dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"MemoryConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.key_dim % 2:
            raise ValueError(f"MemoryConfig.key_dim must be even, got {self.key_dim}")
        if self.topk > self.n_keys:
            raise ValueError(
                f"MemoryConfig.topk ({self.topk}) cannot exceed n_keys ({self.n_keys})"
            )

    @property
    def num_slots(self) -> int:
        return self.n_keys**2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> MemoryConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown MemoryConfig keys: {sorted(unknown)}")
        return cls(**d)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> MemoryConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))


class ProductKeyMemory(nn.Module):
    """Maps hidden states (..., D) to a memory read (..., D).

    `sparse_values=True` makes the value table's gradient a sparse COO tensor holding only
    the rows read in the batch; SMF's optimizers rely on it. Dense training (recovery,
    the masked-AdamW baseline) switches it off.
    When `record` is on, the slot indices of the last forward are kept in `last_indices`
    (shape (..., H, k)) so statistics can be counted without a second pass.
    `paper3_bf16` (set by smf.method.retrofit.to_paper3_bf16) computes as paper 3's bf16
    model does: slot scores in the parameters' dtype (bf16), no float32 upcast; softmax
    weights rounded to that dtype; the read kept in the values' dtype until the output
    projection. Off, slot scores and weights are float32 even under autocast.
    """

    def __init__(self, config: MemoryConfig, device: torch.device | str | None = None):
        super().__init__()
        self.config = c = config
        self.query = nn.Linear(c.hidden_size, c.heads * c.key_dim, bias=c.query_bias, device=device)
        half = c.key_dim // 2
        self.sub_keys = nn.Parameter(torch.empty(2, c.heads, c.n_keys, half, device=device))
        self.values = nn.Parameter(torch.empty(c.num_slots, c.value_dim, device=device))
        self.gate = (
            nn.Linear(c.hidden_size, c.value_dim, bias=c.paper3_biases, device=device)
            if c.swilu
            else None
        )
        self.out = nn.Linear(c.value_dim, c.hidden_size, bias=c.paper3_biases, device=device)
        self.sparse_values = False
        self.record = False
        self.paper3_bf16 = False
        self.last_indices: torch.Tensor | None = None
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Paper 3 inits: sub-keys U(+-1/sqrt K), values, projections N(0, D^-1/2), query Xavier.
        Biases: zero (ours) or, with `paper3_biases`, nn.Linear's default init left in place."""
        c = self.config
        if self.values.device.type == "meta":
            return
        bound = 1.0 / math.sqrt(c.key_dim)
        self.sub_keys.uniform_(-bound, bound)
        std = c.hidden_size**-0.5
        self.values.normal_(0.0, std)
        nn.init.xavier_uniform_(self.query.weight)
        if self.query.bias is not None and not c.paper3_biases:
            self.query.bias.zero_()
        if self.gate is not None:
            self.gate.weight.normal_(0.0, std)
        self.out.weight.normal_(0.0, std)

    def lookup(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Slot indices and softmax weights, each (T, H, k), for flat hidden states x (T, D)."""
        c, exact = self.config, self.paper3_bf16
        q = self.query(x).view(-1, c.heads, c.key_dim)
        if c.query_norm:
            q = F.layer_norm(q, (c.key_dim,))
        halves = q.view(-1, c.heads, 2, c.key_dim // 2).permute(2, 1, 0, 3)  # (2, H, T, K/2)
        if exact:  # paper 3: the einsum of its bf16 query and sub-keys, a bf16 result
            sub_scores = halves @ self.sub_keys.to(halves.dtype).transpose(-1, -2)
        else:
            with torch.autocast(x.device.type, enabled=False):  # slot choice in fp32 under amp
                sub_scores = halves.float() @ self.sub_keys.float().transpose(-1, -2)
        # (2, H, T, n_keys) -> top k per half in one call; paper 3 sorts them (ties at its cut)
        top, idx = sub_scores.topk(c.topk, dim=-1, sorted=exact)
        top, idx = top.permute(0, 2, 1, 3), idx.permute(0, 2, 1, 3)  # (2, T, H, k)
        top1, top2, idx1, idx2 = top[0], top[1], idx[0], idx[1]
        cand = (top1.unsqueeze(-1) + top2.unsqueeze(-2)).flatten(-2)  # (T, H, k*k)
        scores, best = cand.topk(c.topk, dim=-1)
        i = idx1.gather(-1, best // c.topk)
        j = idx2.gather(-1, best % c.topk)
        indices = i * c.n_keys + j
        weights = scores.float().softmax(dim=-1)
        if exact:
            weights = weights.to(scores.dtype)  # paper 3 rounds them to its scores' bf16
        return indices, weights

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        c = self.config
        lead = hidden.shape[:-1]
        x = hidden.reshape(-1, c.hidden_size)
        indices, weights = self.lookup(x)
        if self.record:
            self.last_indices = indices.detach().view(*lead, c.heads, c.topk)
        read = F.embedding_bag(
            indices.view(x.shape[0], -1),
            self.values,
            per_sample_weights=weights.view(x.shape[0], -1).to(self.values.dtype),
            mode="sum",
            sparse=self.sparse_values,
        )  # heads summed, as in paper 3's code
        if self.paper3_bf16:  # gated in the values' dtype, rounded only for the projection
            if self.gate is not None:
                read = read * F.silu(self.gate(x))
            return self.out(read.to(self.out.weight.dtype)).view(*lead, c.hidden_size)
        read = read.to(x.dtype)
        if self.gate is not None:
            read = read * F.silu(self.gate(x))
        return self.out(read).view(*lead, c.hidden_size)
