"""Product-key memory layer: shapes, sparse lookup, config round trip, paper sizes."""

import torch

from smf.method.memory import MemoryConfig, ProductKeyMemory


def small_config(**kw) -> MemoryConfig:
    base = dict(hidden_size=32, n_keys=8, heads=2, topk=4, key_dim=16)
    base.update(kw)
    return MemoryConfig(**base)


def test_config_round_trips_through_json(tmp_path):
    cfg = small_config(swilu=False, query_norm=True)
    cfg.save(tmp_path / "m.json")
    assert MemoryConfig.load(tmp_path / "m.json") == cfg
    assert cfg.value_dim == 32 and cfg.num_slots == 64


def test_paper_sizes_are_constructible():
    paper3 = MemoryConfig(hidden_size=896, n_keys=128, heads=4, topk=16, key_dim=256)
    paper1 = MemoryConfig(hidden_size=2048, n_keys=1024, heads=4, topk=32, key_dim=512)
    assert paper3.num_slots == 16_384 and paper1.num_slots == 1_048_576
    for cfg in (paper3, paper1):
        m = ProductKeyMemory(cfg, device="meta")
        assert m.values.shape == (cfg.num_slots, cfg.hidden_size)
        assert m.sub_keys.shape == (2, cfg.heads, cfg.n_keys, cfg.key_dim // 2)


def test_lookup_matches_brute_force_over_all_slots():
    """Product-key top-k equals the exact top-k over all N sums, without computing them."""
    torch.manual_seed(0)
    m = ProductKeyMemory(small_config())
    x = torch.randn(5, 32)
    idx, w = m.lookup(x)
    assert idx.shape == w.shape == (5, 2, 4)
    torch.testing.assert_close(w.sum(-1), torch.ones(5, 2))
    q = m.query(x).view(5, 2, 16)
    q1, q2 = q.chunk(2, -1)
    s1 = torch.einsum("thd,hnd->thn", q1, m.sub_keys[0])
    s2 = torch.einsum("thd,hnd->thn", q2, m.sub_keys[1])
    full = (s1.unsqueeze(-1) + s2.unsqueeze(-2)).flatten(-2)  # (T, H, N)
    expect = full.topk(4, dim=-1).indices
    assert torch.equal(idx.sort(-1).values, expect.sort(-1).values)


def test_forward_shapes_and_sparse_gradient():
    m = ProductKeyMemory(small_config(value_dim=24))
    m.sparse_values = True
    x = torch.randn(2, 3, 32)
    y = m(x)
    assert y.shape == (2, 3, 32)
    y.sum().backward()
    g = m.values.grad
    assert g.is_sparse
    touched = g.coalesce().indices()[0].unique()
    assert len(touched) <= 2 * 3 * 2 * 4 < m.config.num_slots


def test_record_keeps_indices_per_token():
    m = ProductKeyMemory(small_config())
    m.record = True
    m(torch.randn(2, 5, 32))
    assert m.last_indices.shape == (2, 5, 2, 4)
    assert int(m.last_indices.max()) < 64
