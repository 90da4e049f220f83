"""Lab: SmolLM2-135M-Instruct's greedy answers and gold log-probs on TriviaQA fixture records.

Not the product: a measurement for issue 27 (can F and K be drawn from records 0-999?). The
measuring is the library's `smf.probes.base_answers.answer_rows`, which the DAG's rule
real_fact_answers runs (resumable, on `real_fact_task.records` of a configured dataset); this
script is the same on a GGUF and the fixture without a DAG.
Writes one JSON line per question: id, greedy output (paper-3 prompt and, optionally, the chat
template), correctness by the project's paper-3 substring match, gold answer's summed and mean
teacher-forced log-prob.

    nice -n 10 python lab/base_answers.py --out lab/out/base_answers.jsonl --n 1000
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import datasets
import torch

from smf.data.gguf import load_gguf
from smf.data.prepare import prepare_qa
from smf.probes.base_answers import answer_rows

FIXTURE = (
    Path(os.environ.get("SMF_REAL_FIXTURES", "../shared/fixtures/real"))
    / "triviaqa/llm_foundry/triviaqa_sm_sub.jsonl"
)
GGUF = Path(".cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")


def load_records(n: int) -> list[dict]:
    """Fixture records 0..n-1 as the project's qa records (id, question, answer, aliases)."""
    ds = datasets.load_dataset("json", data_files=str(FIXTURE), split="train")
    records, _ = prepare_qa(ds, name="triviaqa", limit=n)
    return records


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--chat", action="store_true", help="also generate with the chat template")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()
    model, tokenizer = load_gguf(GGUF)
    records = load_records(args.n)
    print(f"loaded in {time.time() - t0:.0f} s; {len(records)} records", flush=True)
    prompts = ["paper3", "chat"] if args.chat else ["paper3"]
    rows = answer_rows(model, tokenizer, records, prompts, args.max_new_tokens, args.batch_size)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    right = sum(r["correct"] for r in rows)
    chat_right = sum(r.get("chat_correct", False) for r in rows)
    print(
        f"paper3 prompt: {right}/{len(records)} right; chat: {chat_right}; "
        f"total {time.time() - t0:.0f} s",
        flush=True,
    )


if __name__ == "__main__":
    main()
