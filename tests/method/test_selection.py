"""TF-IDF, KL and count scores against hand-computed values; deterministic top-t."""

import math

import pytest
import torch

from smf.method.background import BackgroundStats
from smf.method.selection import select_rows, slot_scores, top_rows

# 6 slots, 10 background documents. The batch reads slots 1, 3, 4 (counts 2, 1, 1).
DF = torch.tensor([5, 0, 9, 2, 10, 0])
READS = torch.tensor([7, 0, 20, 3, 40, 0])
BG = BackgroundStats(n_docs=10, doc_freq={0: DF}, reads={0: READS})
SLOTS = torch.tensor([1, 3, 4])
COUNTS = torch.tensor([2, 1, 1])


def test_tfidf_matches_hand_computation():
    got = slot_scores("tfidf", SLOTS, COUNTS, BG, 0)
    expect = [0.5 * math.log(11 / 1), 0.25 * math.log(11 / 3), 0.25 * math.log(11 / 11)]
    assert got.tolist() == pytest.approx(expect, rel=1e-12)


def test_kl_matches_hand_computation():
    got = slot_scores("kl", SLOTS, COUNTS, BG, 0)
    denom = sum(a + 1 for a in READS.tolist())  # 70 + 6 = 76
    q = [1 / denom, 4 / denom, 41 / denom]
    p = [0.5, 0.25, 0.25]
    expect = [pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True)]
    assert got.tolist() == pytest.approx(expect, rel=1e-12)


def test_count_is_raw_count_and_needs_no_background():
    assert slot_scores("count", SLOTS, COUNTS, None, 0).tolist() == [2.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="needs background"):
        slot_scores("kl", SLOTS, COUNTS, None, 0)


def test_top_t_breaks_ties_by_lower_slot_and_never_picks_unread_slots():
    rows = select_rows("count", {0: (SLOTS, COUNTS)}, top_t=2, background=None)
    assert rows[0].tolist() == [1, 3]  # slots 3 and 4 tie on count 1: 3 wins
    # asking for more rows than were read returns only the read ones
    rows = select_rows("tfidf", {0: (SLOTS, COUNTS)}, top_t=5, background=BG)
    assert rows[0].tolist() == [1, 3, 4]
    assert top_rows(torch.tensor([9, 2, 5]), torch.tensor([1.0, 1.0, 1.0]), 2).tolist() == [2, 5]


def test_tfidf_prefers_rare_slots_and_kl_prefers_underread_slots():
    tfidf = select_rows("tfidf", {0: (SLOTS, COUNTS)}, 1, BG)[0].tolist()
    kl = select_rows("kl", {0: (SLOTS, COUNTS)}, 1, BG)[0].tolist()
    assert tfidf == [1] and kl == [1]
    # with equal counts, slot 3 (df 2) beats slot 4 (df 10, read by every document)
    even = (torch.tensor([3, 4]), torch.tensor([1, 1]))
    assert select_rows("tfidf", {0: even}, 1, BG)[0].tolist() == [3]
    assert select_rows("kl", {0: even}, 1, BG)[0].tolist() == [3]


# Ties at the cut. Paper 3's rule, transcribed from its formulas (not its code): float32
# scores over the whole table, -inf where unread, then torch.topk(scores, k=min(t, read)).
TABLE, READ, CUT = 256, 60, 12


def paper3_topk(method: str, dense_counts: torch.Tensor, bg: BackgroundStats) -> list[int]:
    c = dense_counts.float()
    p = c / c.sum().float()
    if method == "tfidf":
        score = p * torch.log((bg.n_docs + 1.0) / (bg.doc_freq[0].float() + 1.0))
    else:
        a = bg.reads[0].float() + 1.0
        score = p * torch.log((p + 1e-8) / (a / a.sum() + 1e-8))
    score = score.masked_fill(dense_counts == 0, float("-inf"))
    k = min(CUT, int((dense_counts > 0).sum()))
    return sorted(torch.topk(score, k=k).indices.tolist())


def crafted(seed: int) -> tuple[torch.Tensor, torch.Tensor, BackgroundStats]:
    """A batch whose read slots share few (count, df, reads) values, so ties straddle the cut."""
    g = torch.Generator().manual_seed(seed)
    slots = torch.randperm(TABLE, generator=g)[:READ].sort().values
    counts = torch.randint(1, 3, (READ,), generator=g)
    df = torch.randint(0, 2, (TABLE,), generator=g) * 3
    bg = BackgroundStats(n_docs=10, doc_freq={0: df}, reads={0: df * 2})
    return slots, counts, bg


@pytest.mark.parametrize("method", ["tfidf", "kl"])
def test_topk_ties_keep_torch_topks_choice(method):
    differs = 0
    for seed in range(8):
        slots, counts, bg = crafted(seed)
        dense = torch.zeros(TABLE, dtype=torch.long).index_put_((slots,), counts)
        want = paper3_topk(method, dense, bg)
        kw = {"kl_eps": 1e-8} if method == "kl" else {}
        got = select_rows(method, {0: (slots, counts)}, CUT, bg, ties="topk", **kw)[0].tolist()
        assert got == want, seed
        ours = select_rows(method, {0: (slots, counts)}, CUT, bg, **kw)[0].tolist()
        differs += ours != want
    assert differs > 0  # the crafted ties do straddle the cut, and the rules disagree there


def test_topk_ties_need_the_table_size():
    with pytest.raises(ValueError, match="needs background"):
        select_rows("count", {0: (SLOTS, COUNTS)}, 2, None, ties="topk")
    with pytest.raises(ValueError, match="unknown tie rule"):
        top_rows(SLOTS, COUNTS.double(), 2, ties="random")


@pytest.mark.parametrize("method", ["tfidf", "kl"])
def test_float32_scores_are_paper3s_bit_for_bit(method):
    """The scores `topk` ranks are paper 3's own float32 values, also where its float32 sum of
    background reads rounds (here about 2.6e7 reads, above 2**24)."""
    g = torch.Generator().manual_seed(0)
    table = 4096
    reads = torch.randint(0, 12_800, (table,), generator=g)
    bg = BackgroundStats(n_docs=2000, doc_freq={0: reads % 2001}, reads={0: reads})
    assert bg.total_reads[0] > 2**24
    slots = torch.randperm(table, generator=g)[:300].sort().values
    counts = torch.randint(1, 50, (300,), generator=g)
    dense = torch.zeros(table, dtype=torch.long).index_put_((slots,), counts)
    c = dense.float()
    p = c / c.sum().float()
    if method == "tfidf":
        want = p * torch.log((bg.n_docs + 1.0) / (bg.doc_freq[0].float() + 1.0))
    else:
        a = bg.reads[0].float() + 1.0
        want = p * torch.log((p + 1e-8) / (a / a.sum() + 1e-8))
    got = slot_scores(method, slots, counts, bg, 0, 1e-8, torch.float32)
    assert torch.equal(got, want[slots])
    ours = slot_scores(method, slots, counts, bg, 0, 1e-8)  # float64: other last bits
    assert not torch.equal(ours.float(), want[slots])
