"""SMF diagnostics: is selection choosing anything, and does the memory contribute at all?

Two questions a run's log and summary must answer without guessing (issue 27):

- Selection: per memory layer and step, how many distinct slots the step's batch read (on the
  tokens selection counts), how many rows were selected, and the fraction. When `top_t` is at
  least the slots read, "the top t by TF-IDF" is every slot read and the method reduces to a
  plain sparse update: TF-IDF and KL then give identical runs. `SelectionTrace` records this
  from the counts selection already made (no second pass, O(slots read) per step).
- Size: the memory branch's output (alpha * memory(x)) against the MLP output beside it. An
  inert memory (ratio near 0) has tiny value gradients, which is why SMF then needs huge
  learning rates. `memory_output_ratio` measures it on a few texts.

The slot-overlap probe for paraphrased questions lives in smf.training.slot_overlap.
"""

from __future__ import annotations

import contextlib
import math
import statistics
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from smf.method.retrofit import memory_blocks
from smf.training.batching import BatchPlan, collate, tokenize

if TYPE_CHECKING:
    from smf.training.config import RowSelection

# A layer is "selection vacuous" when top_t >= slots read in MORE than this share of the
# logged steps (a strict majority); a run is when any of its memory layers is.
VACUOUS_MAJORITY = 0.5
VACUOUS_RULE = (
    "a layer-step is vacuous when top_t >= the distinct slots read by its selection unit (the "
    "step's batch; with select_per micro_batch, every micro-batch); a layer is vacuous when more "
    "than half of the logged steps are; the run is when any memory layer is"
)
# Texts the memory/MLP output ratio is measured on: the first ones of step 1's batch.
RATIO_TEXTS = 8
LOG_FIELDS = ("slots_read", "rows_selected", "fraction_selected", "selection_vacuous")

SlotCounts = dict[int, tuple[torch.Tensor, torch.Tensor]]


class SelectionTrace:
    """One optimizer step's selections per memory layer, fed by `RowSelection.choose`.

    `add` takes the (slots, counts) selection just computed and the rows it kept, so nothing
    is counted twice. With one selection per step the numbers are tensor lengths (no device
    sync); with one per micro-batch the step's slots and rows are unions over micro-batches.
    """

    def __init__(self, top_t: int) -> None:
        self.top_t = top_t
        self._slots: dict[int, list[torch.Tensor]] = {}
        self._rows: dict[int, list[torch.Tensor]] = {}
        self._unit_max: dict[int, int] = {}  # most slots one selection unit read

    def add(self, counts: SlotCounts, rows: dict[int, torch.Tensor]) -> None:
        for layer, (slots, _) in counts.items():
            self._slots.setdefault(layer, []).append(slots)
            self._rows.setdefault(layer, []).append(rows[layer])
            self._unit_max[layer] = max(self._unit_max.get(layer, 0), len(slots))

    def record(self) -> dict[str, dict[str, int | float | bool | None]]:
        """The step's log fields (layer keys are strings, as JSON gives them back); resets."""
        out: dict[str, dict] = {name: {} for name in LOG_FIELDS}
        for layer in sorted(self._slots):
            key = str(layer)
            read = _distinct(self._slots[layer])
            kept = _distinct(self._rows[layer])
            out["slots_read"][key] = read
            out["rows_selected"][key] = kept
            out["fraction_selected"][key] = round(kept / read, 6) if read else None
            out["selection_vacuous"][key] = self._unit_max[layer] <= self.top_t
        self._slots.clear()
        self._rows.clear()
        self._unit_max.clear()
        return out


def _distinct(chunks: list[torch.Tensor]) -> int:
    """Distinct ids over chunks that are each already distinct (one chunk: just its length)."""
    if len(chunks) == 1:
        return len(chunks[0])
    return len(torch.unique(torch.cat(chunks)))


def selection_summary(log: Sequence[dict], top_t: int, per: str = "step") -> dict:
    """Per layer over the run's logged steps: slots read, rows selected, vacuous steps; and
    the run's `selection_vacuous` flag (see VACUOUS_RULE). Records without the fields (a run
    resumed from a checkpoint written before they existed) are skipped and counted."""
    traced = [r for r in log if "slots_read" in r]
    layers: dict[str, dict] = {}
    for key in sorted({k for r in traced for k in r["slots_read"]}, key=int):
        rows = [r for r in traced if key in r["slots_read"]]
        read = [r["slots_read"][key] for r in rows]
        kept = [r["rows_selected"][key] for r in rows]
        fractions = [f for r in rows if (f := r["fraction_selected"][key]) is not None]
        vacuous = sum(bool(r["selection_vacuous"][key]) for r in rows)
        layers[key] = {
            "steps": len(rows),
            "slots_read_min": min(read),
            "slots_read_median": statistics.median(read),
            "slots_read_max": max(read),
            "rows_selected_mean": statistics.fmean(kept),
            "fraction_selected_mean": statistics.fmean(fractions) if fractions else None,
            "vacuous_steps": vacuous,
            "vacuous_fraction": vacuous / len(rows),
            "vacuous": vacuous > VACUOUS_MAJORITY * len(rows),
        }
    vacuous_layers = [int(k) for k, v in layers.items() if v["vacuous"]]
    return {
        "top_t": top_t,
        "per": per,
        "steps_traced": len(traced),
        "steps_untraced": len(log) - len(traced),
        "selection_vacuous": bool(vacuous_layers),
        "vacuous_layers": vacuous_layers,
        "rule": VACUOUS_RULE,
        "layers": layers,
    }


# --------------------------------------------------------------------------- output sizes


@contextlib.contextmanager
def _branch_sums(model: nn.Module, mask: list[torch.Tensor]) -> Iterator[dict[int, list[float]]]:
    """While open, each forward adds, per memory layer, the sums of squares over the tokens of
    `mask[0]` of the memory branch (alpha * memory(x)) and of the MLP output beside it."""
    sums: dict[int, list[float]] = {}
    handles = []

    def add(layer: int, which: int, out: torch.Tensor, scale: torch.Tensor | None) -> None:
        y = out.detach().float()
        if scale is not None:
            y = y * scale.detach().float()
        real = y[mask[0].bool().to(y.device)]  # (real tokens, D)
        acc = sums.setdefault(layer, [0.0, 0.0, 0])
        acc[which] += float(real.double().pow(2).sum())
        if which == 0:
            acc[2] += real.numel()

    for layer, block in memory_blocks(model).items():
        handles.append(
            block.memory.register_forward_hook(
                lambda _m, _i, out, layer=layer, b=block: add(layer, 0, out, b.alpha)
            )
        )
        if block.mlp is not None:
            handles.append(
                block.mlp.register_forward_hook(
                    lambda _m, _i, out, layer=layer: add(layer, 1, out, None)
                )
            )
    try:
        yield sums
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def memory_output_rms(
    model: nn.Module, batches: Iterable[dict[str, torch.Tensor]]
) -> dict[str, dict[str, float | None]]:
    """Per memory layer (string keys): RMS over real tokens and hidden units of the memory
    branch (alpha * memory(x), what is added to the residual) and of the MLP output beside
    it, and their ratio. Replacement retrofits have no MLP: its RMS and the ratio are None.

    `batches` hold `input_ids` and `attention_mask` (padding is left out of both RMS)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    mask: list[torch.Tensor] = [torch.ones(0)]
    try:
        with _branch_sums(model, mask) as sums:
            for batch in batches:
                mask[0] = batch["attention_mask"]
                trunk(model)(
                    input_ids=batch["input_ids"].to(device),
                    attention_mask=batch["attention_mask"].to(device),
                )
    finally:
        model.train(was_training)
    has_mlp = {layer: b.mlp is not None for layer, b in memory_blocks(model).items()}
    out = {}
    for layer, (mem_ss, mlp_ss, n) in sorted(sums.items()):
        mem_rms = math.sqrt(mem_ss / n) if n else None
        mlp_rms = math.sqrt(mlp_ss / n) if n and has_mlp[layer] else None
        ratio = mem_rms / mlp_rms if mem_rms is not None and mlp_rms else None
        out[str(layer)] = {"memory_rms": mem_rms, "mlp_rms": mlp_rms, "ratio": ratio}
    return out


def trunk(model: nn.Module) -> nn.Module:
    """The decoder without its LM head: these measurements need hidden states, not logits
    (a 49k-token vocabulary's logits would be most of the cost)."""
    get = getattr(model, "get_decoder", None)
    decoder = get() if callable(get) else None
    return decoder if isinstance(decoder, nn.Module) else model


def memory_output_ratio(
    model: nn.Module,
    tokenizer,
    texts: Sequence[str],
    *,
    max_length: int = 1024,
    batch_size: int = 4,
) -> dict[str, dict[str, float | None]]:
    """`memory_output_rms` on `texts` (tokenized as training does, with EOS, right-padded)."""
    if not texts:
        raise ValueError("memory_output_ratio needs at least one text")
    seqs = tokenize(tokenizer, texts, max_length)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return memory_output_ratio_of_ids(model, seqs, pad_id, batch_size)


def memory_output_ratio_of_ids(
    model: nn.Module, seqs: Sequence[list[int]], pad_id: int, batch_size: int = 4
) -> dict[str, dict[str, float | None]]:
    """`memory_output_rms` on token id lists, `batch_size` at a time."""
    batches = (
        collate(list(seqs[i : i + batch_size]), pad_id) for i in range(0, len(seqs), batch_size)
    )
    return memory_output_rms(model, batches)


def ratio_sample(seqs: Sequence[list[int]], plan: BatchPlan) -> list[list[int]]:
    """The texts the output ratio is measured on: the first RATIO_TEXTS of step 1's batch, a
    pure function of the seed, so the start and end measurements see the same tokens."""
    ids = [i for micro in plan.micro_batches(0) for i in micro][:RATIO_TEXTS]
    return [seqs[i] for i in ids]


def run_diagnostics(
    log: Sequence[dict],
    selection: RowSelection,
    ratio_start: dict[str, dict],
    ratio_end: dict[str, dict],
    ratio_texts: int,
) -> dict:
    """What an SMF run's summary.json reports under `diagnostics`."""
    summary = selection_summary(log, selection.top_t, selection.per)
    return {
        "selection_vacuous": summary["selection_vacuous"],
        "selection": summary,
        "memory_output_ratio": {
            "texts": ratio_texts,
            "definition": "RMS of alpha * memory(x) / RMS of mlp(x), over real tokens",
            "start": ratio_start,
            "end": ratio_end,
        },
    }
