"""Recovery: the dense warm-up a fresh memory needs before SMF can teach it anything.

Right after `get_smf_model` the memory's output projection is zero (the logits are the base's),
so the value tables get no gradient. Recovery trains every memory parameter densely on general
text, the base frozen (paper 3: OASST1 replies, AdamW lr 5e-4, cosine, 100 warmup steps), with
the pipeline's own setup and loop (smf.training.arms.setup_recovery, smf.training.loop.train).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence

from transformers import PreTrainedModel

from smf.api.model import prepare
from smf.training.arms import setup_recovery
from smf.training.config import TrainConfig
from smf.training.loop import TrainResult, train

DEFAULTS = {"lr": 5e-4, "epochs": 1, "warmup_steps": 100, "checkpoint_every": 0}


def recover(
    model: PreTrainedModel,
    tokenizer,
    texts: Sequence[str],
    *,
    progress: bool = False,
    **train_settings,
) -> TrainResult:
    """Train the memories of an SMF model densely on `texts` (TrainConfig fields as keyword
    arguments, paper 3's recovery by default); the model is then ready for SMF again (base
    frozen, only the value tables trainable)."""
    config = getattr(model, "smf_config", None)
    if config is None:
        raise ValueError("recover needs an SMF model: make it with smf.get_smf_model")
    cfg = TrainConfig(**{**DEFAULTS, **train_settings})
    model, optimizer = setup_recovery(model, cfg)
    with tempfile.TemporaryDirectory(prefix="smf-recovery-") as work:
        result = train(
            model, tokenizer, texts, cfg, optimizer, work_dir=work, fingerprint="recovery",
            progress=progress,
        )  # fmt: skip
    prepare(model, config, trainable=True)
    model.train()
    return result
