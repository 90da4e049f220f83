"""Throughput and peak memory of each arm's training step, through the pipeline's own loop.

A randomly initialised model of Qwen2.5-0.5B-Instruct's shape (no weights needed), memories at
layers 6/12/18 of paper 3's size (16,384 slots x 896), micro-batches of 4 texts x `--tokens`
tokens and 4 accumulation steps: `smf.training.loop.train` runs each (arm, precision) for `--steps`
optimizer steps after `--warmup` and reports tokens per second and the GPU's peak allocated
memory. Each configuration runs in its own subprocess, so its peak memory is its own.

    python benchmarks/arms_step.py --out results/benchmarks/arms_step.json   # on a GPU
    python benchmarks/arms_step.py --smoke                                   # tiny, CPU, CI

The numbers belong to the GPU they ran on; `--smoke` only checks that every configuration runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# (arm, precision): the paper profile's settings, and fp32 for comparison
CONFIGS = [
    ("full", "fp32"),
    ("full", "bf16"),
    ("lora", "fp32"),
    ("lora", "bf16_autocast"),
    ("smf", "fp32"),
    ("smf", "bf16_autocast"),
    ("smf_paper3", "bf16_autocast"),
]
QWEN_05B = dict(
    vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
    num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True,
)  # fmt: skip
TINY = dict(
    vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
    num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
)  # fmt: skip


class RandomTokens:
    """Stands in for a tokenizer: every text is `tokens` random ids (no hub access needed)."""

    def __init__(self, vocab: int, tokens: int, seed: int):
        import torch

        self.gen = torch.Generator().manual_seed(seed)
        self.vocab, self.tokens = vocab, tokens
        self.eos_token_id, self.pad_token_id = vocab - 1, vocab - 2

    def __call__(self, texts, truncation, max_length):  # noqa: ANN001 - tokenizer's signature
        import torch

        n = min(self.tokens, max_length)
        return {"input_ids": [torch.randint(0, self.vocab - 2, (n,), generator=self.gen).tolist()
                              for _ in texts]}  # fmt: skip


def run_one(arm: str, precision: str, smoke: bool, steps: int, warmup: int, tokens: int) -> dict:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from smf.method.background import BackgroundStats
    from smf.method.memory import MemoryConfig
    from smf.method.retrofit import RetrofitConfig, retrofit
    from smf.training.arms import setup_full, setup_lora, setup_smf
    from smf.training.config import RowSelection, TrainConfig
    from smf.training.loop import train
    from smf.training.precision import load_dtype

    device = torch.device("cpu" if smoke else "cuda")
    torch.manual_seed(0)
    shape = TINY if smoke else QWEN_05B
    cfg = TrainConfig(
        lr=1e-4, max_steps=warmup + steps, micro_batch_size=4, grad_accum=4, warmup_steps=0,
        checkpoint_every=0, max_length=tokens, precision=precision,
    )  # fmt: skip
    trains_base = arm == "full"
    model = Qwen2ForCausalLM(Qwen2Config(**shape)).to(load_dtype(precision, trains_base, device))
    selection = None
    if arm.startswith("smf"):
        hidden = shape["hidden_size"]
        n_keys, key_dim = (8, 16) if smoke else (128, 256)
        mem = MemoryConfig(hidden_size=hidden, n_keys=n_keys, heads=4, topk=4 if smoke else 16,
                           key_dim=key_dim)  # fmt: skip
        layers = [1, 2] if smoke else [6, 12, 18]
        retrofit(model, RetrofitConfig(layers=layers, memory=mem, zero_init_output=False))
        paper3 = arm == "smf_paper3"
        model, opt = setup_smf(model.to(device), cfg, "masked_adamw" if paper3 else "adam")
        background = BackgroundStats(
            n_docs=2000,
            doc_freq={i: torch.randint(0, 2000, (mem.num_slots,)) for i in layers},
            reads={i: torch.randint(0, 20000, (mem.num_slots,)) for i in layers},
        )
        top_t = 16 if smoke else 512
        selection = RowSelection(method="tfidf", top_t=top_t, background=background,
                                 **({"per": "micro_batch", "count_tokens": "all"} if paper3
                                    else {}))  # fmt: skip
    elif arm == "lora":
        lora = {"r": 16, "lora_alpha": 32, "target_modules": ["q_proj", "k_proj", "v_proj",
                "o_proj", "gate_proj", "up_proj", "down_proj"]}  # fmt: skip
        model, opt = setup_lora(model.to(device), cfg, lora)
    else:
        model, opt = setup_full(model.to(device), cfg)
    tokenizer = RandomTokens(shape["vocab_size"], tokens, seed=0)
    texts = ["x"] * (cfg.micro_batch_size * cfg.grad_accum * (warmup + steps))
    marks: dict[int, float] = {}

    def on_step(done: int) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()
        marks[done] = time.perf_counter()
        if done == warmup and device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()

    with tempfile.TemporaryDirectory() as work:
        train(model, tokenizer, texts, cfg, opt, work_dir=work, fingerprint="bench",
              selection=selection, progress=False, on_step=on_step)  # fmt: skip
    seconds = marks[warmup + steps] - marks[warmup] if warmup else marks[steps] - marks[1]
    timed = steps if warmup else steps - 1
    step_tokens = cfg.micro_batch_size * cfg.grad_accum * tokens
    return {
        "arm": arm,
        "precision": precision,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "tokens_per_step": step_tokens,
        "step_ms": 1000 * seconds / timed,
        "tokens_per_s": step_tokens * timed / seconds,
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny model on the CPU (CI)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=256, help="tokens per text")
    parser.add_argument("--only", nargs="*", help="arm:precision pairs to run")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one in this process
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.warmup, args.tokens = 2, 1, 32
    if args.one:
        arm, precision = args.one.split(":")
        print(json.dumps(run_one(arm, precision, args.smoke, args.steps, args.warmup,
                                 args.tokens)))  # fmt: skip
        return
    rows = []
    for arm, precision in CONFIGS:
        if args.only and f"{arm}:{precision}" not in args.only:
            continue
        cmd = [
            sys.executable,
            __file__,
            "--one",
            f"{arm}:{precision}",
            "--steps",
            str(args.steps),
            "--warmup",
            str(args.warmup),
            "--tokens",
            str(args.tokens),
        ]
        cmd += ["--smoke"] if args.smoke else []  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{arm}:{precision} failed:\n{proc.stderr[-3000:]}")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        peak = f"{r['peak_gib']:.1f} GiB" if r["peak_gib"] is not None else "-"
        print(f"{arm:11s} {precision:14s} {r['step_ms']:9.1f} ms/step "
              f"{r['tokens_per_s']:10.0f} tok/s  peak {peak}", flush=True)  # fmt: skip
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
