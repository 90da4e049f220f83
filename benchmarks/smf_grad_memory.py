"""How large SMF's accumulated value gradient gets, with and without combining rows per slot.

`embedding_bag(sparse=True)` gives one gradient row per read (tokens x heads x k), and
gradient accumulation concatenates micro-batches. `smf.method.sparse_optim.combining_rows` (what
`smf.training.loop.train` opens for SMF's per-step selection) coalesces each incoming gradient and
the
running sum, so at most one row per slot read remains. This measures one memory layer of the
paper's shape (D = 896, 4 heads x 16 reads) at the paper's batch shape (4 micro-batches of
4 x 330 tokens) for 16,384 and 1,048,576 slots: the stored gradient's rows and MiB after the
step's last micro-batch, and each configuration's peak RSS (own subprocess). Byte counts are
exact and machine independent; RSS and times are this machine's.

    python benchmarks/smf_grad_memory.py --out results/benchmarks/smf_grad_memory.json
    python benchmarks/smf_grad_memory.py --smoke        # tiny shapes, seconds (CI)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

PAPER = {"hidden": 896, "tokens": 330, "batch": 4, "micro_batches": 4, "n_keys": [128, 1024]}
SMOKE = {"hidden": 32, "tokens": 20, "batch": 2, "micro_batches": 3, "n_keys": [16, 64]}


def run_one(shape: dict, n_keys: int, combine: bool, seed: int = 0) -> dict:
    import torch

    from smf.method.memory import MemoryConfig, ProductKeyMemory
    from smf.method.sparse_optim import combining_rows

    torch.manual_seed(seed)
    d = shape["hidden"]
    mem = ProductKeyMemory(MemoryConfig(hidden_size=d, n_keys=n_keys, heads=4, topk=16))
    mem.sparse_values = True
    for p in mem.parameters():
        p.requires_grad_(p is mem.values)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    reads = 0
    t0 = time.perf_counter()
    with combining_rows([mem.values]) if combine else contextlib.nullcontext():
        for _ in range(shape["micro_batches"]):
            hidden = torch.randn(shape["batch"], shape["tokens"], d)
            out = mem(hidden)
            (out * torch.randn_like(out)).sum().backward()
            reads += shape["batch"] * shape["tokens"] * 4 * 16
    seconds = time.perf_counter() - t0
    grad = mem.values.grad
    rows = grad._nnz()
    return {
        "slots": n_keys**2,
        "combine": combine,
        "reads": reads,
        "grad_rows": rows,
        "grad_mib": rows * d * 4 / 2**20,
        "table_mib": n_keys**2 * d * 4 / 2**20,
        "unique_slots": int(grad.coalesce().indices().shape[1]),
        "seconds": seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_mib": base_rss,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny shapes: a quick check, no timing")
    ap.add_argument("--out", default="results/benchmarks/smf_grad_memory.json")
    ap.add_argument("--one", nargs=2, metavar=("N_KEYS", "COMBINE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    shape = SMOKE if args.smoke else PAPER
    if args.one:
        print(json.dumps(run_one(shape, int(args.one[0]), args.one[1] == "1")))
        return
    rows = []
    for n_keys in shape["n_keys"]:
        for combine in (False, True):
            cmd = [sys.executable, __file__, "--one", str(n_keys), str(int(combine))]
            cmd += ["--smoke"] if args.smoke else []
            out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
    head = ["slots", "combined", "reads", "grad rows", "grad MiB", "table MiB", "peak RSS MiB"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        cells = [f"{r['slots']:,}", "yes" if r["combine"] else "no", f"{r['reads']:,}",
                 f"{r['grad_rows']:,}", f"{r['grad_mib']:.0f}", f"{r['table_mib']:.0f}",
                 f"{r['peak_rss_mib']:.0f}"]  # fmt: skip
        print("| " + " | ".join(cells) + " |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"shape": shape, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
