"""The public API, in the style of PEFT: SMFConfig, get_smf_model, recover, compute_background,
save_pretrained / from_pretrained, and SMFTrainer (the HF Trainer running SMF steps).
"""

from smf.api.config import SMFConfig
from smf.api.model import (
    SUPPORTED,
    check_architecture,
    from_pretrained,
    get_smf_model,
    save_pretrained,
)
from smf.api.recovery import recover
from smf.method.background import BackgroundStats, compute_background
from smf.training.hf_trainer import SMFTrainer, TokenizedTexts, training_arguments

__all__ = [
    "SUPPORTED",
    "BackgroundStats",
    "SMFConfig",
    "SMFTrainer",
    "TokenizedTexts",
    "check_architecture",
    "compute_background",
    "from_pretrained",
    "get_smf_model",
    "recover",
    "save_pretrained",
    "training_arguments",
]
