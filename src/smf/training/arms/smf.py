"""SMF: the retrofitted model with only memory value rows trainable, updated sparsely (the rows
each step selects, smf.training.config.RowSelection); the artifact is the memory file.

torch is imported inside the functions, so importing this module never loads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from smf.training.arms.common import ArmRun, Trainable, freeze
from smf.training.arms.registry import ArmKind, register

if TYPE_CHECKING:
    import torch
    from torch import nn
    from transformers import PreTrainedModel

    from smf.training.config import TrainConfig

# arms.<arm>.smf keys -> RowSelection fields (absent keys keep RowSelection's defaults)
SELECTION_KEYS = {
    "count_tokens": "count_tokens", "select_per": "per", "kl_eps": "kl_eps", "select_ties": "ties",
}  # fmt: skip


def setup_smf(model: PreTrainedModel, cfg: TrainConfig, optimizer: str, train_alpha: bool = False):
    """Only the memory value tables train; with `train_alpha` also each layer's output scale
    (paper 3's "+S" arms), which takes dense updates and so needs masked_adamw."""
    from smf.method.retrofit import memories, memory_blocks, set_sparse_values
    from smf.method.sparse_optim import make_optimizer, needs_sparse_grad

    freeze(model)
    values = [m.values for m in memories(model).values()]
    if not values:
        raise ValueError("SMF needs a retrofitted model (no memory layers found)")
    params = list(values)
    if train_alpha:
        if needs_sparse_grad(optimizer):
            raise ValueError(
                f"smf.train_alpha needs optimizer masked_adamw, not {optimizer!r}: the alphas "
                "take dense updates"
            )
        alphas = [b.alpha for b in memory_blocks(model).values()]
        if any(a is None for a in alphas):
            raise ValueError("smf.train_alpha needs an additive retrofit: replacement has no alpha")
        params += alphas
    for p in params:
        p.requires_grad_(True)
    set_sparse_values(model, needs_sparse_grad(optimizer))
    opt = make_optimizer(
        optimizer, params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay
    )
    return model, opt


class Smf(ArmKind):
    def setup(self, run: ArmRun) -> Trainable:
        from smf.method import provenance
        from smf.method.background import BackgroundStats
        from smf.method.retrofit import load_retrofitted, to_paper3_bf16
        from smf.method.selection import METHODS
        from smf.training import precision
        from smf.training.config import RowSelection

        dtype = precision.load_dtype(run.train.precision, False, run.device)
        model = load_retrofitted(run.base_dir, run.memory_path, dtype=dtype).to(run.device)
        smf_cfg = run.config["smf"]
        if smf_cfg["method"] not in METHODS:
            raise ValueError(f"arms.{run.arm}.smf.method must be one of {METHODS}")
        background = None
        if smf_cfg["method"] != "count":
            background = BackgroundStats.load(run.background_path)
            # statistics of another memory would select wrong rows
            provenance.check_background(background, run.background_path, run.memory_path)
        train_alpha = smf_cfg.get("train_alpha", False)
        if precision.memory_bf16(run.train.precision):
            to_paper3_bf16(model, train_alpha=train_alpha)
        model, opt = setup_smf(model, run.train, smf_cfg["optimizer"], train_alpha=train_alpha)
        selection = RowSelection(
            method=smf_cfg["method"],
            top_t=smf_cfg["top_t"],
            background=background,
            **{field: smf_cfg[key] for key, field in SELECTION_KEYS.items() if key in smf_cfg},
        )
        return Trainable(model, opt, selection)

    def save(self, model: nn.Module, artifact: Path) -> None:
        from smf.method.retrofit import save_memory

        save_memory(model, artifact)

    def load(
        self, base_dir: str | Path, artifact: str | Path, dtype: torch.dtype
    ) -> PreTrainedModel:
        from smf.method.retrofit import load_retrofitted

        return load_retrofitted(base_dir, Path(artifact), dtype=dtype)

    def check_config(self, key: str, spec: Mapping, config: Mapping) -> None:
        """The section exists, the retrofit variant it starts from exists, top_t fits the
        memory, alphas train only where they can, and paper 3's tie rule and clipping are
        asked for only where they apply."""
        if "smf" not in spec:
            raise ValueError(f"{key}: kind smf needs a `smf:` section")
        smf = spec["smf"]
        variants = config.get("retrofit_variants", {})
        variant = smf.get("retrofit")
        if variant is not None and variant not in variants:
            raise ValueError(
                f"{key}.smf.retrofit: {variant!r} is not a key of `retrofit_variants` "
                f"(have {sorted(variants)}); null means the main `retrofit`"
            )
        if smf.get("train_alpha"):
            if smf.get("optimizer") != "masked_adamw":
                raise ValueError(
                    f"{key}.smf.train_alpha: needs optimizer masked_adamw (the alphas take "
                    f"dense updates), got {smf.get('optimizer')!r}"
                )
            mode = {**config["retrofit"], **variants.get(variant, {})}.get("mode", "additive")
            if mode != "additive":
                raise ValueError(
                    f"{key}.smf.train_alpha: the {mode} retrofit has no alpha to train"
                )
        check_paper3_switches(key, smf, {**config.get("train", {}), **spec.get("train", {})})
        slots = config["retrofit"]["memory"]["n_keys"] ** 2
        if smf["top_t"] > slots:
            raise ValueError(
                f"{key}.smf.top_t: {smf['top_t']} exceeds the memory's {slots} slots "
                "(retrofit.memory.n_keys ** 2)"
            )


def check_paper3_switches(key: str, smf: Mapping, train: Mapping) -> None:
    """`select_ties: topk` is a property of the tfidf and kl scores (float32, over every slot,
    against background statistics); `clip: torch` clips dense gradients only."""
    if smf.get("select_ties") == "topk" and smf.get("method") not in ("tfidf", "kl"):
        raise ValueError(
            f"{key}.smf.select_ties: topk needs method tfidf or kl (paper 3's float32 scores "
            f"against the background), got method {smf.get('method')!r}"
        )
    if train.get("clip") == "torch" and smf.get("optimizer") != "masked_adamw":
        raise ValueError(
            f"{key}.train.clip: torch needs optimizer masked_adamw (torch's clip_grad_norm_ "
            f"takes dense gradients only), got {smf.get('optimizer')!r}"
        )


SMF = register(
    Smf("smf", artifact="memory.safetensors", artifact_is_dir=False, needs_retrofit=True)
)
