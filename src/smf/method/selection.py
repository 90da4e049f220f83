"""Which memory rows an SMF step may update: rank the slots the batch read, keep the top t.

Scores are computed only for slots the batch actually read (count > 0), so a slot the
batch never touched is never selected, and the work is proportional to the batch's reads.
Ties at the cut: "lowest_id" [ours] keeps the lower slot index (stable sort over ascending
slot ids), so a selection does not depend on a sort algorithm; "topk" keeps what paper 3's code
keeps: `torch.topk` over a dense vector of every slot's score (-inf where unread), computed in
float32 as paper 3's code computes it; topk's order among equal scores is unspecified and may
differ between CPU and CUDA.
"""

from __future__ import annotations

import torch

from smf.method.background import BackgroundStats

METHODS = ("tfidf", "kl", "count")
TIES = ("lowest_id", "topk")


def slot_scores(
    method: str,
    slots: torch.Tensor,
    counts: torch.Tensor,
    background: BackgroundStats | None,
    layer: int,
    kl_eps: float = 0.0,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Score of each read slot, following paper 3's formulas: float64 (ours), or float32 as
    paper 3's code computes them (kl's normaliser then a float32 sum over the whole table).

    tfidf: (c_i / sum c) * ln((N_docs + 1) / (df_i + 1))
    kl:    p_i * ln((p_i + eps) / (q_i + eps)), p_i = c_i / sum c,
           q_i = (a_i + 1) / sum_j (a_j + 1); paper 3's code uses eps = 1e-8, ours 0 (p, q > 0)
    count: c_i
    """
    c = counts.to(dtype)
    if method == "count":
        return c
    if background is None:
        raise ValueError(f"selection method {method!r} needs background statistics")
    if layer not in background.doc_freq:
        raise ValueError(f"background statistics have no layer {layer}")
    p = c / c.sum()
    if method == "tfidf":
        df = background.doc_freq[layer].to(slots.device)[slots].to(dtype)
        return p * torch.log((background.n_docs + 1) / (df + 1))
    if method == "kl":
        reads = background.reads[layer]
        if dtype == torch.float64:
            denom = background.total_reads[layer] + reads.numel()  # sum_j (a_j + 1), O(1)
        else:  # paper 3 rounds this sum (above 2**24 reads), so compute it as it does
            denom = (reads.to(slots.device).to(dtype) + 1).sum()
        q = (reads.to(slots.device)[slots].to(dtype) + 1) / denom
        return p * torch.log((p + kl_eps) / (q + kl_eps))
    raise ValueError(f"unknown selection method {method!r}; choose one of {METHODS}")


def top_rows(
    slots: torch.Tensor,
    scores: torch.Tensor,
    top_t: int,
    ties: str = "lowest_id",
    n_slots: int | None = None,
) -> torch.Tensor:
    """The top_t slots by score, returned in ascending id order. Ties: see the module doc;
    "topk" needs the table size n_slots, since topk's choice among ties depends on it."""
    if top_t < 1:
        raise ValueError(f"top_t must be >= 1, got {top_t}")
    if ties == "topk":
        return topk_rows(slots, scores, top_t, n_slots)
    if ties != "lowest_id":
        raise ValueError(f"unknown tie rule {ties!r}; choose one of {TIES}")
    order = torch.argsort(slots)
    slots, scores = slots[order], scores[order]
    ranked = torch.sort(scores, descending=True, stable=True).indices[:top_t]
    return torch.sort(slots[ranked]).values


def topk_rows(
    slots: torch.Tensor, scores: torch.Tensor, top_t: int, n_slots: int | None
) -> torch.Tensor:
    """Paper 3's cut: `torch.topk(dense, k=min(top_t, slots read))` (largest, sorted: its
    defaults) on the float32 scores of all n_slots slots, -inf where the batch read nothing."""
    if n_slots is None:
        raise ValueError("ties 'topk' needs the table size (n_slots)")
    dense = torch.full((n_slots,), float("-inf"), dtype=torch.float32, device=scores.device)
    dense[slots] = scores.to(torch.float32)
    k = min(top_t, slots.numel())
    return torch.sort(torch.topk(dense, k=k).indices).values


def select_rows(
    method: str,
    slot_counts: dict[int, tuple[torch.Tensor, torch.Tensor]],
    top_t: int,
    background: BackgroundStats | None,
    kl_eps: float = 0.0,
    ties: str = "lowest_id",
) -> dict[int, torch.Tensor]:
    """Per layer: the rows an SMF step will update. With ties "topk" the table size comes
    from the background statistics (paper 3 scores tfidf and kl only, which need them)."""
    if ties == "topk" and background is None:
        raise ValueError("ties 'topk' needs background statistics (for the table size)")
    out = {}
    for layer, (slots, counts) in slot_counts.items():
        dtype = torch.float32 if ties == "topk" else torch.float64  # paper 3's, for its ties
        scores = slot_scores(method, slots, counts, background, layer, kl_eps, dtype)
        n_slots = background.doc_freq[layer].numel() if background is not None else None
        out[layer] = top_rows(slots, scores, top_t, ties, n_slots)
    return out
