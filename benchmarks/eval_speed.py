"""Wall time of the `lm_eval` protocol probes against lm-evaluation-harness's own tasks.

Same model (SmolLM2-135M-Instruct from its GGUF, float32), same records (the real-record
fixtures), same batch size, one process. Each repeat runs every task on both sides, the order
of the sides alternating between repeats, so load from other jobs on a shared machine falls on
both alike; each side's time is the median of the repeats. Peak memory is the largest resident
set (CPU) or allocated CUDA memory seen during the call. The per-question results are compared
too: MedMCQA predictions, TriviaQA filtered answers, WikiText word perplexity. Last line:
`max ratio: X`, the largest project / lm-eval time over the tasks.

    python benchmarks/eval_speed.py                 # small sizes: a few minutes on a free CPU
    python benchmarks/eval_speed.py --medmcqa 300 --triviaqa 32 --max-new-tokens 256 \
        --wikitext-pages 5 --window 0              # issue 26's sizes (window 0: 8,192)

Skips (exit 0) without lm_eval, the GGUF (tools/fetch_smollm2.py) or the fixtures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_GGUF = REPO / ".cache" / "smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_FIXTURES = REPO.parent / "shared" / "fixtures" / "real"
TASKS = ("medmcqa", "triviaqa", "wikitext")


class PeakMemory:
    """Largest memory in use while the block runs: CUDA allocations on a GPU, else the
    process's resident set sampled every 5 ms (ru_maxrss only ever grows, so it cannot
    tell one task from the next)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.peak, self._stop = device, 0, threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(0.005)

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, int, object]:
    """(seconds, peak memory in bytes, result) of one call."""
    with PeakMemory(device) as memory:
        start = time.perf_counter()
        result = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
    return seconds, memory.peak, result


def interleaved(
    runs: dict[str, dict[str, Callable[[], object]]], repeats: int, device: torch.device
) -> dict[str, dict[str, dict]]:
    """Run every task's sides `repeats` times, alternating which side goes first; per task and
    side: the median seconds, all seconds, the largest peak memory and the last result."""
    out = {
        task: {side: {"seconds": [], "peak": 0} for side in sides} for task, sides in runs.items()
    }
    for repeat in range(repeats):
        for task, sides in runs.items():
            names = list(sides) if repeat % 2 == 0 else list(reversed(sides))
            for side in names:
                seconds, peak, result = timed(sides[side], device)
                slot = out[task][side]
                slot["seconds"].append(seconds)
                slot["peak"] = max(slot["peak"], peak)
                slot["result"] = result
                print(f"  repeat {repeat + 1} {task:8s} {side:8s} {seconds:8.1f} s", flush=True)
    for sides in out.values():
        for slot in sides.values():
            slot["median"] = statistics.median(slot["seconds"])
    return out


def table(timings: dict[str, dict[str, dict]], records: dict[str, str]) -> tuple[str, float]:
    """The markdown table of the timings and the largest ratio project / lm-eval."""
    lines = [
        "| task | records | lm-eval s | project s | ratio | lm-eval peak | project peak |",
        "|---|---|---|---|---|---|---|",
    ]
    ratios = []
    for task, sides in timings.items():
        theirs, ours = sides["lm_eval"], sides["project"]
        ratio = ours["median"] / theirs["median"]
        ratios.append(ratio)
        lines.append(
            f"| {task} | {records[task]} | {theirs['median']:.1f} | {ours['median']:.1f} | "
            f"{ratio:.2f}x | {theirs['peak'] / 2**30:.2f} GiB | {ours['peak'] / 2**30:.2f} GiB |"
        )
    return "\n".join(lines), max(ratios)


def _missing(args: argparse.Namespace) -> str | None:
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        return "lm_eval is not installed (pip install lm_eval)"
    if args.model_dir is None and not args.gguf.is_file():
        return f"SmolLM2 GGUF not found at {args.gguf}: run `python tools/fetch_smollm2.py`"
    if not args.fixtures.is_dir():
        return f"real-record fixtures not found at {args.fixtures}"
    return None


def load_model(args: argparse.Namespace, work: Path, device: torch.device):
    """SmolLM2 in float32, converted from the GGUF by the base stage (or read from a folder
    the base stage wrote earlier, --model-dir)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from smf.pipeline import stages

    folder = args.model_dir
    if folder is None:
        folder = work / "base"
        spec = {"model": str(args.gguf), "dtype": "float32"}
        stages.build_base(spec, folder, device="cpu", work_dir=work / "convert")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).to(device).eval()
    return model, AutoTokenizer.from_pretrained(folder)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gguf", type=Path, default=DEFAULT_GGUF)
    ap.add_argument("--model-dir", type=Path, help="a converted base model (skips conversion)")
    ap.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES)
    ap.add_argument("--medmcqa", type=int, default=20, help="MedMCQA eval-part questions")
    ap.add_argument("--triviaqa", type=int, default=16, help="TriviaQA questions (at most 32)")
    ap.add_argument("--max-new-tokens", type=int, default=48, help="lm-eval's own: 256")
    ap.add_argument("--wikitext-pages", type=int, default=1, help="the last N WikiText-2 pages")
    ap.add_argument("--window", type=int, default=1024, help="0: the model's maximum (8,192)")
    ap.add_argument("--batch-size", type=int, default=8, help="both sides")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    ap.add_argument("--json", type=Path, help="also write the timings here")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    reason = _missing(args)
    if reason:
        print(f"eval_speed: skipped: {reason}")
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from eval_speed_tasks import build_runs

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory(prefix="eval_speed_") as tmp:
        model, tokenizer = load_model(args, Path(tmp), device)
        runs, records, check = build_runs(model, tokenizer, args, Path(tmp))
        print(f"device: {device}; torch threads: {torch.get_num_threads()}", flush=True)
        timings = interleaved(runs, args.repeats, device)
    for line in check(timings):
        print(line)
    text, worst = table(timings, records)
    print(text)
    if args.json:
        keys = ("seconds", "median", "peak")
        summary = {t: {s: {k: v[k] for k in keys} for s, v in sides.items()}
                   for t, sides in timings.items()}  # fmt: skip
        args.json.write_text(json.dumps({"device": str(device), "timings": summary}, indent=1))
    print(f"max ratio: {worst:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
