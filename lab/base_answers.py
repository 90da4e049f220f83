"""Lab: SmolLM2-135M-Instruct's greedy answers and gold log-probs on TriviaQA fixture records.

Not the product: a measurement for issue 27 (can F and K be drawn from records 0-999?).
Writes one JSON line per question: id, greedy output (paper-3 prompt and, optionally, the chat
template), correctness by the project's paper-3 substring match, gold answer's summed and mean
teacher-forced log-prob.

    nice -n 10 python lab/base_answers.py --out lab/out/base_answers.jsonl --n 1000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import datasets
import torch

from smf.data.gguf import load_gguf
from smf.data.prepare import prepare_qa
from smf.data.prompts import qa_correct_paper3, qa_prompt
from smf.probes.qa import generate_answers
from smf.probes.scoring import continuation_logprobs

FIXTURE = Path("/work/shared/fixtures/real/triviaqa/llm_foundry/triviaqa_sm_sub.jsonl")
GGUF = Path(".cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")


def load_records(n: int) -> list[dict]:
    """Fixture records 0..n-1 as the project's qa records (id, question, answer, aliases)."""
    ds = datasets.load_dataset("json", data_files=str(FIXTURE), split="train")
    records, _ = prepare_qa(ds, name="triviaqa", limit=n)
    return records


def chat_prompt(tokenizer, question: str) -> str:
    """The model's own chat template around the bare question (generation prompt added)."""
    messages = [{"role": "user", "content": question}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


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
    t1 = time.time()
    prompts = [qa_prompt(r["question"]) for r in records]
    outputs = generate_answers(
        model, tokenizer, prompts, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size
    )
    t_gen = time.time() - t1
    gold = continuation_logprobs(
        model, tokenizer, [(p, " " + r["answer"]) for p, r in zip(prompts, records, strict=True)]
    )
    t_lp = time.time() - t1 - t_gen
    chat_outputs = [None] * len(records)
    if args.chat:
        chat = [chat_prompt(tokenizer, r["question"]) for r in records]
        chat_outputs = generate_answers(
            model,
            tokenizer,
            chat,
            max_new_tokens=args.max_new_tokens,
            batch_size=args.batch_size,
            add_special_tokens=False,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    right = chat_right = 0
    with args.out.open("w") as fh:
        for rec, out, (lp, n_tok), chat_out in zip(
            records, outputs, gold, chat_outputs, strict=True
        ):
            ok = qa_correct_paper3(out, rec["aliases"])
            chat_ok = chat_out is not None and qa_correct_paper3(chat_out, rec["aliases"])
            right += ok
            chat_right += chat_ok
            row = {**rec, "output": out, "correct": ok, "gold_logprob": lp, "gold_tokens": n_tok}
            if chat_out is not None:
                row |= {"chat_output": chat_out, "chat_correct": chat_ok}
            fh.write(json.dumps(row) + "\n")
    print(
        f"paper3 prompt: {right}/{len(records)} right; chat: {chat_right}; "
        f"generate {t_gen:.0f} s, gold log-probs {t_lp:.0f} s, total {time.time() - t0:.0f} s",
        flush=True,
    )


if __name__ == "__main__":
    main()
