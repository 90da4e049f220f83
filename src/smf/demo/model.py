"""The demo's tokenizer and tiny model (the demo profile's `base.model: demo`).

A byte-level BPE tokenizer trained on the demo world's text and a Qwen2 config shaped like
Qwen2.5-0.5B, only much smaller, so the demo runs the paper's code paths on a laptop CPU.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported inside the functions, so importing this module never loads torch
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

# Tokenizer / model constants
EOS_TOKEN = "<|endoftext|>"  # also used as bos, like Qwen2.5
PAD_TOKEN = "<|pad|>"
DEFAULT_MODEL_MAX_LENGTH = 1024
N_BYTE_SYMBOLS = 256  # byte-level BPE starts from the 256 byte symbols


def tokenizer_training_texts(paths: dict[str, Path]) -> Iterator[str]:
    """Texts to train the demo tokenizer on: the training-side files of write_demo_world
    (pretraining, background, OASST, MedMCQA train). Validation/test files are left out."""
    for name in ("pretrain", "background", "oasst1"):
        with open(paths[name], encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)["text"]
    with open(paths["medmcqa_train"], encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            yield "\n".join([r["question"], r["opa"], r["opb"], r["opc"], r["opd"], r["exp"] or ""])


def build_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 1024,
    model_max_length: int = DEFAULT_MODEL_MAX_LENGTH,
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (like Qwen's, so any text round-trips), with <|endoftext|> as
    eos and bos and <|pad|> as pad. No bos is prepended on encode (Qwen2.5 doesn't either)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    min_vocab = N_BYTE_SYMBOLS + 2
    if vocab_size < min_vocab:
        raise ValueError(f"vocab_size={vocab_size} < {min_vocab} (256 bytes + 2 special tokens)")
    texts = list(texts)
    if not texts:
        raise ValueError("build_tokenizer: no training texts")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS_TOKEN,
        bos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,  # keep " ." exactly, WikiText style depends on it
    )


def tiny_qwen2_config(
    vocab_size: int,
    hidden_size: int = 128,
    num_layers: int = 4,
    intermediate_size: int = 256,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    max_position_embeddings: int = DEFAULT_MODEL_MAX_LENGTH,
    bos_token_id: int | None = None,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
) -> Qwen2Config:
    """A Qwen2 config shaped like Qwen2.5-0.5B (GQA, tied embeddings), only much smaller."""
    from transformers import Qwen2Config

    if hidden_size % num_heads:
        raise ValueError(f"hidden_size={hidden_size} not divisible by num_heads={num_heads}")
    if num_heads % num_kv_heads:
        raise ValueError(f"num_heads={num_heads} not divisible by num_kv_heads={num_kv_heads}")
    return Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
    )


def tiny_qwen2_config_for(tokenizer: PreTrainedTokenizerFast, **kwargs) -> Qwen2Config:
    """tiny_qwen2_config with vocab size and bos/eos/pad ids taken from the tokenizer."""
    return tiny_qwen2_config(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **kwargs,
    )


def build_untrained(
    texts: Iterable[str], settings: Mapping, seed: int
) -> tuple[Qwen2ForCausalLM, PreTrainedTokenizerFast]:
    """The demo base before its pretraining (smf.pipeline.stages.build_base): the tokenizer
    trained on `texts` and the tiny Qwen2 shaped by `settings` (config `base.demo`), its
    weights drawn from `seed`."""
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = build_tokenizer(texts, vocab_size=settings["vocab_size"])
    config = tiny_qwen2_config_for(
        tokenizer,
        hidden_size=settings["hidden_size"],
        num_layers=settings["num_layers"],
        intermediate_size=settings["intermediate_size"],
        num_heads=settings["num_heads"],
        num_kv_heads=settings["num_kv_heads"],
    )
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config), tokenizer
