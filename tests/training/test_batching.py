"""Batch plan: every epoch covers each text once, deterministically (a resumed run sees the
same batches); length grouping pads less; paper 1's groups stay in one step."""

import pytest
import torch

from smf.training.batching import BatchPlan, step_batches
from smf.training.config import TrainConfig


def config(**kw) -> TrainConfig:
    base = dict(lr=1e-3, epochs=2, micro_batch_size=2, grad_accum=2, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def test_data_order_is_deterministic_and_covers_each_epoch():
    cfg = config(micro_batch_size=3, grad_accum=2)
    epoch0 = [i for s in range(4) for mb in step_batches(20, s, cfg) for i in mb]
    assert sorted(epoch0) == list(range(20))
    assert step_batches(20, 1, cfg) == step_batches(20, 1, cfg)
    assert step_batches(20, 4, cfg) != step_batches(20, 0, cfg)


def test_length_grouping_covers_each_epoch_pads_less_and_is_deterministic():
    gen = torch.Generator().manual_seed(0)
    lengths = (torch.randint(5, 400, (600,), generator=gen)).tolist()
    grouped = config(micro_batch_size=4, grad_accum=4, group_by_length=True)
    plain = config(micro_batch_size=4, grad_accum=4)
    steps = range(38)  # 600 / 16 -> 38 steps per epoch

    def epoch(plan, first):
        return [mb for s in steps for mb in plan.micro_batches(first + s)]

    def padded_tokens(micro):
        return sum(len(mb) * max(lengths[i] for i in mb) for mb in micro)

    a = epoch(BatchPlan(lengths, grouped), 0)
    assert sorted(i for mb in a for i in mb) == list(range(600))
    assert a == epoch(BatchPlan(lengths, grouped), 0)  # a fresh plan (a resumed run) agrees
    assert a != epoch(BatchPlan(lengths, grouped), 38)  # the next epoch differs
    b = epoch(BatchPlan(lengths, plain), 0)
    assert padded_tokens(a) < 0.7 * padded_tokens(b)
    assert sum(lengths) <= padded_tokens(a)
    with pytest.raises(ValueError, match="BatchPlan"):
        step_batches(600, 0, grouped)


def test_group_size_keeps_each_group_in_one_step():
    """Paper 1's batches: texts come in consecutive groups (one fact's paraphrases); an epoch
    shuffles whole groups, so with an effective batch of one group each step holds one fact."""
    cfg = config(micro_batch_size=3, grad_accum=2, group_size=6)
    plan = BatchPlan([10] * 60, cfg)
    steps = [sum(plan.micro_batches(s), []) for s in range(10)]
    assert sorted(i for step in steps for i in step) == list(range(60))
    for step in steps:
        assert step == list(range(step[0], step[0] + 6)) and step[0] % 6 == 0
    assert [s[0] for s in steps] != sorted(s[0] for s in steps)  # the groups are shuffled
    assert [sum(plan.micro_batches(s), []) for s in range(10, 20)] != steps  # per epoch
    with pytest.raises(ValueError, match="does not divide"):
        BatchPlan([10] * 61, cfg)
    with pytest.raises(ValueError, match="exclude"):
        config(group_size=6, group_by_length=True)
