"""Small SMF models for the API tests: a tiny Qwen2 or Llama, retrofitted and recovered."""

from __future__ import annotations

import copy

import torch
from conftest import make_tiny_qwen2
from transformers import LlamaConfig, LlamaForCausalLM

import smf

FACTS = [f"Question: what is item {i}?\nAnswer: number {i * 7 % 13}" for i in range(20)]
GENERAL = [f"Some general text number {i}, about the weather and the sea." for i in range(12)]


def make_tiny_llama(vocab_size: int = 320, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
    )
    return LlamaForCausalLM(config).eval()


def small_config(**kw) -> smf.SMFConfig:
    base = dict(layers=[1, 3], n_keys=8, heads=2, topk=4, key_dim=16, top_t=5)
    base.update(kw)
    return smf.SMFConfig(**base)


def recovered(tokenizer, **kw):
    """(SMF model after a short recovery, its background statistics)."""
    model = smf.get_smf_model(make_tiny_qwen2(seed=1), small_config(**kw))
    smf.recover(model, tokenizer, GENERAL, lr=1e-2, max_steps=3, warmup_steps=0, grad_accum=1)
    background = smf.compute_background(model, tokenizer, GENERAL, batch_size=4, progress=False)
    return model, background


def twin(model):
    """An independent copy (SMF attributes included)."""
    return copy.deepcopy(model)


def values(model) -> dict[int, torch.Tensor]:
    from smf.method.retrofit import memories

    return {layer: m.values.detach().clone() for layer, m in memories(model).items()}
