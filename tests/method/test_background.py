"""Slot counting over real tokens only, and background statistics."""

import torch
from conftest import make_tiny_qwen2

from smf.method.background import BackgroundStats, SlotCounter, compute_background, recording
from smf.method.memory import MemoryConfig
from smf.method.retrofit import RetrofitConfig, retrofit


def retrofitted():
    model = make_tiny_qwen2()
    mem = MemoryConfig(hidden_size=64, n_keys=8, heads=2, topk=4, key_dim=16)
    return retrofit(model, RetrofitConfig(layers=[0, 2], memory=mem, zero_init_output=False))


def counts_for(model, ids, mask):
    counter = SlotCounter()
    with recording(model), torch.no_grad():
        model(input_ids=ids, attention_mask=mask)
        counter.add(model, mask)
    return counter.counts()


def test_padding_does_not_change_counts():
    model = retrofitted()
    seq = torch.randint(0, 300, (1, 7))
    pad = 319
    short = torch.cat([seq, torch.full((1, 2), pad)], dim=1)
    long = torch.cat([seq, torch.full((1, 9), pad)], dim=1)
    a = counts_for(model, short, (short != pad).long())
    b = counts_for(model, long, (long != pad).long())
    for layer in a:
        assert torch.equal(a[layer][0], b[layer][0]) and torch.equal(a[layer][1], b[layer][1])
        assert int(a[layer][1].sum()) == 7 * 2 * 4  # tokens x heads x k
    # counting padding too would change them
    c = counts_for(model, long, torch.ones_like(long))
    assert int(c[0][1].sum()) == 16 * 2 * 4


def test_counter_accumulates_micro_batches():
    model = retrofitted()
    ids = torch.randint(0, 300, (2, 5))
    counter = SlotCounter()
    with recording(model), torch.no_grad():
        for row in range(2):
            model(input_ids=ids[row : row + 1])
            counter.add(model, torch.ones(1, 5, dtype=torch.long))
    joint = counts_for(model, ids, torch.ones_like(ids))
    for layer, (slots, counts) in counter.counts().items():
        assert torch.equal(slots, joint[layer][0]) and torch.equal(counts, joint[layer][1])


def test_background_doc_freq_and_reads(tokenizer, tmp_path):
    model = retrofitted()
    docs = ["Question: Who was the man", "Answer: David Seville", "Medical exam question:"]
    stats = compute_background(model, tokenizer, docs, batch_size=2, description="three docs")
    for layer in (0, 2):
        df, reads = stats.doc_freq[layer], stats.reads[layer]
        assert df.max() <= 3 and (df <= reads).all()
        n_tokens = sum(len(tokenizer(d)["input_ids"]) for d in docs)
        assert int(reads.sum()) == n_tokens * 2 * 4
    # one document alone gives df in {0, 1}
    single = compute_background(model, tokenizer, docs[:1], batch_size=1)
    assert set(single.doc_freq[0].unique().tolist()) <= {0, 1}
    stats.save(tmp_path / "bg.safetensors")
    back = BackgroundStats.load(tmp_path / "bg.safetensors")
    assert back.n_docs == 3 and back.description == "three docs"
    assert torch.equal(back.doc_freq[2], stats.doc_freq[2])
    assert torch.equal(back.reads[0], stats.reads[0])
