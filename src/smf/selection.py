"""Which memory rows an SMF step may update: rank the slots the batch read, keep the top t.

Scores are computed only for slots the batch actually read (count > 0), so a slot the
batch never touched is never selected, and the work is proportional to the batch's reads.
Ties are broken by the lower slot index (stable sort over ascending slot ids).
"""

from __future__ import annotations

import torch

from smf.statistics import BackgroundStats

METHODS = ("tfidf", "kl", "count")


def slot_scores(
    method: str,
    slots: torch.Tensor,
    counts: torch.Tensor,
    background: BackgroundStats | None,
    layer: int,
    kl_eps: float = 0.0,
) -> torch.Tensor:
    """Score of each read slot (float64), following paper 3's formulas.

    tfidf: (c_i / sum c) * ln((N_docs + 1) / (df_i + 1))
    kl:    p_i * ln((p_i + eps) / (q_i + eps)), p_i = c_i / sum c,
           q_i = (a_i + 1) / sum_j (a_j + 1); paper 3's code uses eps = 1e-8, ours 0 (p, q > 0)
    count: c_i
    """
    c = counts.to(torch.float64)
    if method == "count":
        return c
    if background is None:
        raise ValueError(f"selection method {method!r} needs background statistics")
    if layer not in background.doc_freq:
        raise ValueError(f"background statistics have no layer {layer}")
    p = c / c.sum()
    if method == "tfidf":
        df = background.doc_freq[layer].to(slots.device)[slots].to(torch.float64)
        return p * torch.log((background.n_docs + 1) / (df + 1))
    if method == "kl":
        reads = background.reads[layer]
        denom = background.total_reads[layer] + reads.numel()  # sum_j (a_j + 1), O(1)
        q = (reads.to(slots.device)[slots].to(torch.float64) + 1) / denom
        return p * torch.log((p + kl_eps) / (q + kl_eps))
    raise ValueError(f"unknown selection method {method!r}; choose one of {METHODS}")


def top_rows(slots: torch.Tensor, scores: torch.Tensor, top_t: int) -> torch.Tensor:
    """The top_t slots by score (ties: lower slot id first); returned in ascending id order."""
    if top_t < 1:
        raise ValueError(f"top_t must be >= 1, got {top_t}")
    order = torch.argsort(slots)
    slots, scores = slots[order], scores[order]
    ranked = torch.sort(scores, descending=True, stable=True).indices[:top_t]
    return torch.sort(slots[ranked]).values


def select_rows(
    method: str,
    slot_counts: dict[int, tuple[torch.Tensor, torch.Tensor]],
    top_t: int,
    background: BackgroundStats | None,
    kl_eps: float = 0.0,
) -> dict[int, torch.Tensor]:
    """Per layer: the rows an SMF step will update."""
    out = {}
    for layer, (slots, counts) in slot_counts.items():
        scores = slot_scores(method, slots, counts, background, layer, kl_eps)
        out[layer] = top_rows(slots, scores, top_t)
    return out
