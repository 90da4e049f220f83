"""Row-sparse updates of memory value tables.

An SMF step (1) restricts each value table's gradient to the selected rows, (2) clips, and
(3) updates exactly those rows. With sparse gradients (`ProductKeyMemory.sparse_values`)
every stage costs O(rows touched x D), never O(N x D):

- `SparseSGD`: p[rows] -= lr * g[rows].
- `SparseAdam`: Adam whose moment estimates exist only for rows that have ever been
  selected (a slot -> state-row map plus growable buffers) and are updated only for the
  rows selected now; bias correction uses each row's own step count (lazy Adam).
- `masked_adamw` (paper 3's code): dense `torch.optim.AdamW` on a dense gradient multiplied
  by a 0/1 row mask. Kept for comparison: its momentum keeps moving rows selected in earlier
  steps, so the update is not really sparse, and each step costs O(N x D).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import torch
from torch import nn

OPTIMIZERS = ("sgd", "adam", "masked_adamw")


def keep_rows(grad: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """`grad` with every row outside `rows` (ascending ids) zeroed. Sparse: O(nnz)."""
    if grad.is_sparse:
        # filter the raw (uncoalesced) entries first: only the kept rows are ever summed
        idx = grad._indices()[0]
        keep = torch.isin(idx, rows.to(idx.device))
        return torch.sparse_coo_tensor(
            idx[keep].unsqueeze(0), grad._values()[keep], grad.shape, check_invariants=False
        ).coalesce()
    mask = torch.zeros(grad.shape[0], 1, dtype=grad.dtype, device=grad.device)
    mask[rows.to(grad.device)] = 1
    return grad * mask


def restrict_grad_to_rows(param: nn.Parameter, rows: torch.Tensor) -> None:
    """Keep only the gradient of `rows` (ascending ids) in `param.grad`."""
    if param.grad is not None:
        param.grad = keep_rows(param.grad, rows)


def clip_grad_norm(params: Iterable[nn.Parameter], max_norm: float) -> torch.Tensor:
    """Global L2 clipping that also accepts sparse gradients; returns the pre-clip norm as a
    device tensor (no host sync: the scale is clamped on the device, as torch's own does)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    sq = sum((g.coalesce().values() if g.is_sparse else g).float().pow(2).sum() for g in grads)
    norm = torch.sqrt(sq)
    if max_norm > 0:
        scale = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
        for g in grads:
            g.mul_(scale.to(g.dtype))
    return norm


CLIPS = ("smf", "torch")


def clip_gradients(params: Iterable[nn.Parameter], max_norm: float, how: str) -> torch.Tensor:
    """Clip by `how`: "smf" (ours, takes sparse gradients) or "torch", i.e.
    `torch.nn.utils.clip_grad_norm_` as the HF Trainer calls it (paper 3): per-tensor norms,
    then the norm of those, which rounds differently from ours in the last bits. Like the
    Trainer, "torch" does not clip at max_norm 0; the norm is still returned for the log."""
    if how == "smf":
        return clip_grad_norm(params, max_norm)
    if how != "torch":
        raise ValueError(f"clip must be one of {CLIPS}, got {how!r}")
    params = [p for p in params if p.grad is not None]
    if any(p.grad.is_sparse for p in params):
        raise ValueError("clip 'torch' needs dense gradients (optimizer masked_adamw)")
    limit = max_norm if max_norm > 0 else float("inf")
    return torch.nn.utils.clip_grad_norm_(params, limit)


@contextlib.contextmanager
def combining_rows(params: Iterable[nn.Parameter]) -> Iterator[None]:
    """While open, sparse gradients keep one row per slot instead of one per read.

    A memory read's sparse gradient holds a row for every (token, head, k) read: 4 x 330
    tokens x 4 heads x 16 reads is 84k rows of D, about 300 MB at D = 896, for a table of
    16k rows (56 MB), and accumulating micro-batches concatenates them. Coalescing each
    incoming gradient and the accumulated sum keeps at most one row per slot read this step.
    """

    def coalesce_incoming(g: torch.Tensor) -> torch.Tensor:
        return g.coalesce() if g.is_sparse else g

    def coalesce_accumulated(p: torch.Tensor) -> None:
        if p.grad is not None and p.grad.is_sparse:
            p.grad = p.grad.coalesce()

    handles = []
    for p in params:
        handles.append(p.register_hook(coalesce_incoming))
        handles.append(p.register_post_accumulate_grad_hook(coalesce_accumulated))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _sparse_rows(p: nn.Parameter) -> tuple[torch.Tensor, torch.Tensor] | None:
    g = p.grad
    if g is None:
        return None
    if not g.is_sparse:
        raise ValueError(
            "sparse optimizers need sparse value gradients: call set_sparse_values(model, True)"
        )
    g = g.coalesce()
    return g.indices()[0], g.values()


class SparseSGD(torch.optim.Optimizer):
    """Plain SGD on the rows present in a sparse gradient (paper 1's choice)."""

    def __init__(self, params: Iterable[nn.Parameter], lr: float, weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001 - torch's signature
        for group in self.param_groups:
            for p in group["params"]:
                got = _sparse_rows(p)
                if got is None:
                    continue
                rows, g = got
                update = g.to(p.dtype)
                if group["weight_decay"]:
                    update = update + group["weight_decay"] * p[rows]
                p.index_add_(0, rows, update, alpha=-group["lr"])
        return None


class SparseAdam(torch.optim.Optimizer):
    """Adam with state kept only for rows that were ever updated, each with its own step count."""

    def __init__(
        self,
        params: Iterable[nn.Parameter],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        super().__init__(
            params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay}
        )

    def _state_rows(self, p: nn.Parameter, rows: torch.Tensor) -> torch.Tensor:
        """Positions of `rows` in this parameter's state buffers, allocating new ones as needed."""
        st = self.state[p]
        if not st:
            st["slot"] = torch.full((p.shape[0],), -1, dtype=torch.long, device=p.device)
            st["size"] = 0
            cap = 1024
            st["exp_avg"] = torch.zeros(cap, *p.shape[1:], dtype=torch.float32, device=p.device)
            st["exp_avg_sq"] = torch.zeros_like(st["exp_avg"])
            st["steps"] = torch.zeros(cap, dtype=torch.float32, device=p.device)
        where = st["slot"][rows]
        new = rows[where < 0]
        if len(new):
            size = st["size"]
            need = size + len(new)
            cap = st["exp_avg"].shape[0]
            if need > cap:  # grow geometrically: amortised O(new rows)
                cap = max(need, 2 * cap)
                for key in ("exp_avg", "exp_avg_sq", "steps"):
                    old = st[key]
                    grown = torch.zeros(cap, *old.shape[1:], dtype=old.dtype, device=old.device)
                    grown[:size] = old[:size]
                    st[key] = grown
            st["slot"][new] = torch.arange(size, need, device=p.device)
            st["size"] = need
            where = st["slot"][rows]
        return where

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001 - torch's signature
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                got = _sparse_rows(p)
                if got is None:
                    continue
                rows, g = got
                g = g.float()
                pos = self._state_rows(p, rows)
                st = self.state[p]
                m = st["exp_avg"][pos].mul_(beta1).add_(g, alpha=1 - beta1)
                v = st["exp_avg_sq"][pos].mul_(beta2).addcmul_(g, g, value=1 - beta2)
                t = st["steps"][pos] + 1
                st["exp_avg"][pos], st["exp_avg_sq"][pos], st["steps"][pos] = m, v, t
                shape = (-1,) + (1,) * (g.dim() - 1)
                bc1 = (1 - beta1**t).view(shape)
                bc2 = (1 - beta2**t).view(shape)
                update = (m / bc1) / ((v / bc2).sqrt() + group["eps"])
                if group["weight_decay"]:
                    update = update + group["weight_decay"] * p[rows].float()
                p.index_add_(0, rows, update.to(p.dtype), alpha=-group["lr"])
        return None

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        for st in self.state.values():  # torch casts float params' state to their dtype
            if "slot" in st:
                st["slot"] = st["slot"].long()

    def state_rows(self, p: nn.Parameter) -> int:
        """How many rows of `p` carry optimizer state (grows with rows ever selected)."""
        st = self.state.get(p)
        return int(st["size"]) if st else 0


def make_optimizer(
    kind: str,
    params: Iterable[nn.Parameter],
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """The value-table optimizer for an SMF run; `needs_sparse_grad(kind)` says how to set up."""
    params = list(params)
    if kind == "sgd":
        return SparseSGD(params, lr=lr, weight_decay=weight_decay)
    if kind == "adam":
        return SparseAdam(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    if kind == "masked_adamw":
        fused = all(p.is_cuda for p in params) or None
        return torch.optim.AdamW(
            params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, fused=fused
        )
    raise ValueError(f"unknown SMF optimizer {kind!r}; choose one of {OPTIMIZERS}")


def needs_sparse_grad(kind: str) -> bool:
    if kind not in OPTIMIZERS:
        raise ValueError(f"unknown SMF optimizer {kind!r}; choose one of {OPTIMIZERS}")
    return kind != "masked_adamw"
