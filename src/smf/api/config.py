"""SMFConfig: where the memories go, their size, and how SMF trains them (the one object a
library user fills in, like PEFT's LoraConfig)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from smf.method.background import BackgroundStats
from smf.method.memory import MemoryConfig
from smf.method.retrofit import RetrofitConfig
from smf.method.selection import METHODS
from smf.method.sparse_optim import OPTIMIZERS
from smf.training.config import LOSS_WEIGHTINGS, RowSelection, check_choice


@dataclass
class SMFConfig:
    """Memory placement and size, row selection and the sparse optimizer.

    The defaults are paper 3's memory (16,384 slots of 4 heads reading 16 each) with TF-IDF
    selection of 512 rows per layer and step, updated by the sparse Adam.
    """

    layers: list[int]  # decoder layers that get a memory (e.g. [6, 12, 18] of 24)
    n_keys: int = 128  # slots per memory = n_keys ** 2
    heads: int = 4
    topk: int = 16  # slots each head of each token reads
    key_dim: int = 256
    mode: str = "additive"  # mlp(x) + alpha * memory(x), logits unchanged at retrofit
    method: str = "tfidf"  # tfidf | kl (need background statistics) | count
    top_t: int = 512  # rows each memory may update per optimizer step
    optimizer: str = "adam"  # adam, sgd (truly sparse) | masked_adamw (paper 3's dense AdamW)
    count_tokens: str = "attention"  # attention (real tokens) | loss | all
    select_per: str = "step"  # step | micro_batch (paper 3's code)
    ties: str = "lowest_id"  # lowest_id | topk (paper 3's)
    kl_eps: float = 0.0
    loss_weighting: str = "micro_batch_mean"  # micro_batch_mean | tokens | micro_batch_sum
    seed: int = 0  # the memories' random init
    memory_options: dict = field(default_factory=dict)  # other MemoryConfig fields

    def __post_init__(self) -> None:
        self.layers = [int(i) for i in self.layers]
        check_choice("method", self.method, METHODS)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("loss_weighting", self.loss_weighting, LOSS_WEIGHTINGS)
        if not 1 <= self.top_t <= self.n_keys**2:
            slots = self.n_keys**2
            raise ValueError(f"top_t must be in 1..{slots} (n_keys ** 2), got {self.top_t}")
        self.row_selection(None if self.method == "count" else _EMPTY)  # checks the other choices
        self.memory_config(self.key_dim)  # and the memory's sizes

    def memory_config(self, hidden_size: int) -> MemoryConfig:
        return MemoryConfig(
            hidden_size=hidden_size,
            n_keys=self.n_keys,
            heads=self.heads,
            topk=self.topk,
            key_dim=self.key_dim,
            **self.memory_options,
        )

    def retrofit_config(self, hidden_size: int, base: dict | None = None) -> RetrofitConfig:
        """The retrofit of a model of width `hidden_size`; `extra` keeps this config and the
        base's identity, so the saved memory says what it is and what it was built on."""
        extra = {"smf": self.to_dict(), "base": base or {}}
        return RetrofitConfig(
            layers=list(self.layers),
            memory=self.memory_config(hidden_size),
            mode=self.mode,
            extra=extra,
        )

    def row_selection(self, background: BackgroundStats | None) -> RowSelection:
        if self.method != "count" and background is None:
            raise ValueError(
                f"selection method {self.method!r} ranks against background statistics: "
                "pass background=smf.compute_background(model, tokenizer, texts)"
            )
        return RowSelection(
            method=self.method,
            top_t=self.top_t,
            background=background,
            count_tokens=self.count_tokens,
            per=self.select_per,
            kl_eps=self.kl_eps,
            ties=self.ties,
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SMFConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown SMFConfig keys: {sorted(unknown)}")
        return cls(**d)


# stands in for real statistics while the config checks its own choices
_EMPTY = BackgroundStats(0, {}, {})
