"""Share of computed tokens that are padding, with and without `train.group_by_length`.

A micro-batch is padded to its longest text, so with random batches a long-tailed length
distribution (MedMCQA texts with explanations) wastes much of every forward and backward.
This tokenises a prepared task file (`results/data/*.jsonl`, multiple_choice) the way the
finetune stage does and counts, over one epoch of `smf.training.batching.BatchPlan`, the real
tokens and
the tokens computed (micro-batch size x its longest text). Counts only, no model: exact and
machine independent.

    python benchmarks/padding.py results/data/medmcqa_train.jsonl results/models/base
    python benchmarks/padding.py TASK TOKENIZER --micro-batch 4 --grad-accum 4 --max-length 1024
"""

from __future__ import annotations

import argparse
import json

from transformers import AutoTokenizer

from smf.data.prompts import mcq_training_text
from smf.data.sources import read_jsonl
from smf.training.batching import BatchPlan, steps_per_epoch, tokenize
from smf.training.config import TrainConfig


def padding_report(lengths: list[int], cfg: TrainConfig) -> dict:
    plan = BatchPlan(lengths, cfg)
    micro = [mb for s in range(steps_per_epoch(len(lengths), cfg)) for mb in plan.micro_batches(s)]
    computed = sum(len(mb) * max(lengths[i] for i in mb) for mb in micro)
    return {
        "group_by_length": cfg.group_by_length,
        "real_tokens": sum(lengths),
        "computed_tokens": computed,
        "padding_share": 1 - sum(lengths) / computed,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("task", help="a prepared multiple_choice jsonl (results/data/...)")
    ap.add_argument("tokenizer", help="a tokenizer folder (results/models/base) or hub id")
    ap.add_argument("--micro-batch", type=int, default=4)
    ap.add_argument("--grad-accum", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--append-eos", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    texts = [mcq_training_text(r) for r in read_jsonl(args.task)]
    lengths = [len(x) for x in tokenize(tokenizer, texts, args.max_length, args.append_eos)]
    rows = []
    for grouped in (False, True):
        cfg = TrainConfig(
            lr=0.0,
            micro_batch_size=args.micro_batch,
            grad_accum=args.grad_accum,
            seed=args.seed,
            group_by_length=grouped,
        )
        rows.append(padding_report(lengths, cfg))
    plain, grouped = rows
    print(json.dumps({"texts": len(texts), "rows": rows}, indent=2))
    print(
        f"padding {plain['padding_share']:.1%} -> {grouped['padding_share']:.1%} of computed "
        f"tokens; computed tokens x{grouped['computed_tokens'] / plain['computed_tokens']:.2f}"
    )


if __name__ == "__main__":
    main()
