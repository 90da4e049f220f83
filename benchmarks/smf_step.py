"""Cost of one SMF training step vs memory size: our sparse update vs paper 3's dense mask.

One step = forward + backward + slot selection (TF-IDF) + update, on a small Qwen2
(hidden 256) with one memory layer of N = 16,384 or 1,048,576 slots. Each configuration
runs in its own subprocess so its peak RSS is its own. Prints a table and writes JSON.

    python benchmarks/smf_step.py --out results/benchmarks/smf_step.json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

CONFIGS = [  # (update rule, n_keys): N = n_keys**2 = 16,384 or 1,048,576 slots
    ("sparse_adam", 128),
    ("sparse_adam", 1024),
    ("masked_adamw", 128),
    ("masked_adamw", 1024),
]


def run_one(
    optimizer: str, n_keys: int, steps: int, warmup: int, seed: int, diagnostics: bool = False
) -> dict:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from smf.method.background import BackgroundStats, SlotCounter, recording
    from smf.method.memory import MemoryConfig
    from smf.method.retrofit import RetrofitConfig, retrofit
    from smf.method.sparse_optim import clip_grad_norm, restrict_grad_to_rows
    from smf.training.arms import setup_smf
    from smf.training.config import RowSelection, TrainConfig
    from smf.training.diagnostics import SelectionTrace

    torch.manual_seed(seed)
    hidden, batch, seq, vocab = 256, 4, 128, 2048
    model = Qwen2ForCausalLM(
        Qwen2Config(
            vocab_size=vocab,
            hidden_size=hidden,
            intermediate_size=4 * hidden,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            tie_word_embeddings=True,
        )
    )
    mem = MemoryConfig(hidden_size=hidden, n_keys=n_keys, heads=4, topk=16, key_dim=128)
    retrofit(model, RetrofitConfig(layers=[2], memory=mem, zero_init_output=False))
    n = mem.num_slots
    background = BackgroundStats(
        n_docs=1000,
        doc_freq={2: torch.randint(0, 1000, (n,))},
        reads={2: torch.randint(0, 5000, (n,))},
    )
    kind = "adam" if optimizer == "sparse_adam" else "masked_adamw"
    model, opt = setup_smf(model, TrainConfig(lr=1e-3), kind)
    values = model.model.layers[2].mlp.memory.values
    counter = SlotCounter()
    selection = RowSelection(method="tfidf", top_t=512, background=background)
    trace = SelectionTrace(512) if diagnostics else None  # the train log's per-layer fields
    phases: dict[str, list[float]] = {"forward": [], "backward": [], "update": [], "step": []}
    for i in range(warmup + steps):
        ids = torch.randint(0, vocab, (batch, seq))
        t0 = time.perf_counter()
        with recording(model):
            loss = model(input_ids=ids, labels=ids).loss
            counter.add(model, torch.ones_like(ids))
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        rows = selection.choose(counter, trace)[2]
        restrict_grad_to_rows(values, rows)
        if trace is not None:
            trace.record()
        clip_grad_norm([values], 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        if i >= warmup:
            for name, seconds in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t3 - t0), strict=True):
                phases[name].append(1000 * seconds)
    return {
        "optimizer": optimizer,
        "slots": n,
        **{f"{k}_ms_median": statistics.median(v) for k, v in phases.items()},
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "value_table_mib": n * hidden * 4 / 2**20,
        "steps": steps,
        "diagnostics": diagnostics,
    }


def median_run(runs: list[dict]) -> dict:
    """Per-field median over repeated subprocess runs of one configuration."""
    out = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, float):
            out[key] = statistics.median(r[key] for r in runs)
    out["repeats"] = len(runs)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3, help="subprocess runs per configuration")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="results/benchmarks/smf_step.json")
    ap.add_argument("--diagnostics", action="store_true", help="also trace the log's fields")
    ap.add_argument("--one", nargs=2, metavar=("OPTIMIZER", "N_KEYS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        res = run_one(
            args.one[0], int(args.one[1]), args.steps, args.warmup, args.seed, args.diagnostics
        )
        print(json.dumps(res))
        return
    runs: dict[tuple[str, int], list[dict]] = {c: [] for c in CONFIGS}
    for repeat in range(args.repeats):  # interleaved, so machine drift hits every config alike
        for optimizer, n_keys in CONFIGS:
            cmd = [sys.executable, __file__, "--one", optimizer, str(n_keys),
                   "--steps", str(args.steps), "--warmup", str(args.warmup)]  # fmt: skip
            cmd += ["--diagnostics"] if args.diagnostics else []
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            runs[(optimizer, n_keys)].append(json.loads(out.strip().splitlines()[-1]))
            print(f"repeat {repeat}: {optimizer} n_keys={n_keys} done", file=sys.stderr)
    rows = [median_run(r) for r in runs.values()]
    by = {(r["optimizer"], r["slots"]): r for r in rows}
    head = ["rule", "slots", "step ms", "forward", "backward", "select+update", "peak RSS MiB"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        cells = [r["optimizer"], f"{r['slots']:,}"] + [
            f"{r[f'{k}_ms_median']:.1f}" for k in ("step", "forward", "backward", "update")
        ] + [f"{r['peak_rss_mib']:.0f}"]  # fmt: skip
        print("| " + " | ".join(cells) + " |")
    ratios = {
        f"{opt}_{phase}": by[(opt, 1024**2)][f"{phase}_ms_median"]
        / by[(opt, 128**2)][f"{phase}_ms_median"]
        for opt in ("sparse_adam", "masked_adamw")
        for phase in ("step", "update")
    }
    print("time ratio 1M / 16k slots:", {k: round(v, 2) for k, v in ratios.items()})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rows": rows, "ratio_1M_over_16k": ratios}, indent=2))


if __name__ == "__main__":
    main()
