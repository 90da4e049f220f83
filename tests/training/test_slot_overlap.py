"""Answer-position slot overlap of paired prompts: identical prompts overlap fully, and the
batched library function agrees with a one-prompt-at-a-time hand computation."""

from __future__ import annotations

import pytest
import torch
from conftest import make_tiny_qwen2

from smf.method.background import recording
from smf.method.memory import MemoryConfig
from smf.method.retrofit import RetrofitConfig, memories, retrofit
from smf.training.slot_overlap import answer_slot_overlap, answer_slots, jaccard, overlap_summary

PAIRS = [
    ("Question: Who wrote Hamlet?\nAnswer:", "Hamlet was written by"),
    ("Question: What is the capital of France?\nAnswer:", "The capital of France is"),
    ("Question: Which vitamin is fat soluble?\nAnswer:", "A fat soluble vitamin:"),
]


@pytest.fixture()
def model():
    mem = MemoryConfig(hidden_size=64, n_keys=16, heads=2, topk=4, key_dim=16)
    return retrofit(make_tiny_qwen2(seed=0), RetrofitConfig(layers=[1, 3], memory=mem), seed=0)


def test_jaccard_by_hand():
    assert jaccard({1, 2, 3}, {2, 3, 4}) == 0.5
    assert jaccard({1}, {2}) == 0.0
    assert jaccard(set(), set()) == 1.0


def test_summary_of_known_sets():
    taught = [frozenset({1, 2, 3}), frozenset({5, 6})]
    held = [frozenset({2, 3, 4}), frozenset({5, 6})]
    got = overlap_summary(taught, held)
    assert got["matched_per_pair"] == [0.5, 1.0]
    assert got["matched"] == 0.75
    # mismatched: ({1,2,3},{5,6}) = 0 and ({5,6},{2,3,4}) = 0
    assert got["random"] == 0.0 and got["random_pairs"] == 2 and got["pairs"] == 2
    assert overlap_summary(taught[:1], held[:1])["random"] is None
    with pytest.raises(ValueError, match="held-out"):
        overlap_summary(taught, held[:1])


def test_identical_prompts_overlap_fully(model, tokenizer):
    prompts = [a for a, _ in PAIRS]
    got = answer_slot_overlap(model, tokenizer, list(zip(prompts, prompts, strict=True)))
    assert set(got) == {1, 3}
    for layer in got.values():
        assert layer["matched"] == 1.0 and layer["matched_per_pair"] == [1.0] * len(PAIRS)
        assert layer["random"] < 1.0  # different questions read different slots


def hand_slots(model, tokenizer, prompt: str) -> dict[int, set[int]]:
    """Slots read at the last token, one unpadded prompt at a time."""
    ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]])
    with torch.no_grad(), recording(model):
        model(input_ids=ids)
        return {layer: set(m.last_indices[0, -1].flatten().tolist()) for layer, m in
                memories(model).items()}  # fmt: skip


def test_batched_overlap_matches_a_hand_computation(model, tokenizer):
    got = answer_slot_overlap(model, tokenizer, PAIRS, batch_size=2)
    sets = [(hand_slots(model, tokenizer, a), hand_slots(model, tokenizer, b)) for a, b in PAIRS]
    for layer in (1, 3):
        matched = [jaccard(a[layer], b[layer]) for a, b in sets]
        random = [
            jaccard(sets[i][0][layer], sets[j][1][layer])
            for i in range(len(PAIRS))
            for j in range(len(PAIRS))
            if i != j
        ]
        assert got[layer]["matched_per_pair"] == pytest.approx(matched)
        assert got[layer]["matched"] == pytest.approx(sum(matched) / len(matched))
        assert got[layer]["random"] == pytest.approx(sum(random) / len(random))
        assert 0 < got[layer]["random"] < 1  # a case where the numbers mean something


def test_answer_slots_keep_prompt_order_and_size(model, tokenizer):
    prompts = [PAIRS[1][0], PAIRS[0][0], PAIRS[1][0]]
    got = answer_slots(model, tokenizer, prompts)
    for sets in got.values():
        assert len(sets) == 3 and sets[0] == sets[2] != sets[1]
        assert all(1 <= len(s) <= 2 * 4 for s in sets)  # heads x k at most


def test_a_model_without_memory_is_refused(tokenizer):
    with pytest.raises(ValueError, match="retrofitted"):
        answer_slot_overlap(make_tiny_qwen2(), tokenizer, PAIRS)
