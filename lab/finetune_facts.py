"""Lab: does full finetuning of SmolLM2-135M-Instruct learn real TriviaQA facts it got wrong?

Not the product: a measurement that de-risks issue 27's task design. From the cached base
answers (lab/base_answers.py) it draws F and K with smf.tasks.real_facts, writes each fact's
wordings
with smf.tasks.real_fact_templates, full-finetunes the base (AdamW, one fact's wordings per step)
and
reports, before and after: held-out and taught accuracy on F, the held-out gold mean log-prob,
K accuracy (answers lost and gained) with paired bootstrap intervals.

    nice -n 10 python lab/finetune_facts.py --answers lab/out/base_answers.jsonl \
        --out lab/out/ft_default.json --epochs 3 --lr 1e-4
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

from smf.data.gguf import load_gguf
from smf.data.prompts import qa_correct_paper3, qa_prompt
from smf.probes.qa import generate_answers
from smf.probes.scoring import continuation_logprobs
from smf.report.intervals import bootstrap_mean, bootstrap_paired_difference
from smf.tasks.real_fact_templates import DEFAULT_TRAINED, build_task, held_out_leaks
from smf.tasks.real_facts import SelectionSizes, random_answer_chance, select_facts
from smf.training.batching import collate, tokenize

GGUF = Path(".cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")


def evaluate(model, tokenizer, records: list[dict], max_new_tokens: int) -> dict:
    """Per-question correctness (paper 3 match) and gold mean log-prob in the standard prompt."""
    prompts = [qa_prompt(r["question"]) for r in records]
    outputs = generate_answers(
        model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=16
    )
    golds = [r["answer"]["value"] for r in records]
    lps = continuation_logprobs(
        model, tokenizer, [(p, " " + g) for p, g in zip(prompts, golds, strict=True)]
    )
    return {
        "correct": [
            int(qa_correct_paper3(o, r["answer"]["aliases"]))
            for o, r in zip(outputs, records, strict=True)
        ],
        "mean_logprob": [lp / n for lp, n in lps],
        "outputs": outputs,
    }


def cached(rows: list[dict]) -> dict:
    """The base model's cached verdicts and gold log-probs in the standard prompt."""
    return {
        "correct": [int(qa_correct_paper3(r["output"], r["aliases"])) for r in rows],
        "mean_logprob": [r["gold_logprob"] / r["gold_tokens"] for r in rows],
        "outputs": [r["output"] for r in rows],
    }


def train(
    model, tokenizer, rows: list[dict], epochs: int, lr: float, seed: int, after_epoch=None
) -> list[float]:
    """Full finetuning, one fact's wordings per step, all tokens carry loss; mean loss per epoch.
    `after_epoch(epoch)` runs (in eval mode) after every epoch but the last."""
    by_fact: dict[int, list[str]] = {}
    for row in rows:
        by_fact.setdefault(row["fact"], []).append(row["text"])
    optim = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    rng = random.Random(seed)
    pad = tokenizer.pad_token_id
    losses = []
    model.train()
    for _ in range(epochs):
        order = sorted(by_fact)
        rng.shuffle(order)
        total = 0.0
        for fact in order:
            batch = collate(tokenize(tokenizer, by_fact[fact], max_length=256), pad)
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optim.step()
            optim.zero_grad(set_to_none=True)
            total += loss.item()
        losses.append(total / len(order))
        print(f"epoch loss {losses[-1]:.3f}", flush=True)
        if after_epoch is not None and len(losses) < epochs:
            model.eval()
            after_epoch(len(losses))
            model.train()
    model.eval()
    return losses


def interval(iv) -> list[float]:
    return [round(100 * iv.value, 1), round(100 * iv.low, 1), round(100 * iv.high, 1)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--answers", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n-facts", type=int, default=150)
    parser.add_argument("--n-known", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--trained", default=",".join(DEFAULT_TRAINED))
    parser.add_argument("--eval-every-epoch", action="store_true")
    parser.add_argument("--provisional", action="store_true", help="records without answers")
    parser.add_argument("--save-model", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rows = [json.loads(line) for line in args.answers.open()]
    if args.provisional:  # no cached answers yet: every record counts as wrong, no K
        rows = [{**r, "output": "", "gold_logprob": 0.0, "gold_tokens": 1} for r in rows]
    n_right = sum(qa_correct_paper3(r["output"], r["aliases"]) for r in rows)
    sizes = SelectionSizes(n_facts=args.n_facts, n_known=min(args.n_known, n_right))
    split = select_facts(rows, sizes, seed=args.seed)
    task = build_task(split.facts, split.known, trained=tuple(args.trained.split(",")))
    assert not held_out_leaks(task)
    t0 = time.time()
    model, tokenizer = load_gguf(GGUF)
    mnt = args.max_new_tokens
    probes = {
        "held_out": task["facts_eval"],
        "taught": task["facts_taught"],
        "known": task["known_eval"],
    }
    # held-out (the standard prompt) and K before training are the cached base answers
    before = {
        "held_out": cached(split.facts),
        "taught": evaluate(model, tokenizer, probes["taught"], mnt),
        "known": cached(split.known),
    }
    if args.provisional:
        before["held_out"] = evaluate(model, tokenizer, probes["held_out"], mnt)
        del probes["known"], before["known"]
    t_eval = time.time() - t0
    t1 = time.time()
    per_epoch = []

    def held_out_now(epoch: int) -> None:
        ev = evaluate(model, tokenizer, probes["held_out"], mnt)
        per_epoch.append(
            {
                "epoch": epoch,
                "held_out_pct": 100 * sum(ev["correct"]) / len(ev["correct"]),
                "held_out_mean_logprob": sum(ev["mean_logprob"]) / len(ev["mean_logprob"]),
            }
        )
        print(per_epoch[-1], flush=True)

    hook = held_out_now if args.eval_every_epoch else None
    losses = train(model, tokenizer, task["facts_train"], args.epochs, args.lr, args.seed, hook)
    t_train = time.time() - t1
    after = {k: evaluate(model, tokenizer, v, mnt) for k, v in probes.items()}
    result = {"args": {k: str(v) for k, v in vars(args).items()}, "counts": split.counts}
    result["chance_random_answer_pct"] = {
        "facts": round(100 * random_answer_chance(split.facts), 2),
        "known": round(100 * random_answer_chance(split.known), 2) if split.known else None,
    }
    for k in probes:
        b, a = before[k], after[k]
        result[k] = {
            "before_pct": interval(bootstrap_mean(b["correct"])),
            "after_pct": interval(bootstrap_mean(a["correct"])),
            "gain_pct": interval(bootstrap_paired_difference(a["correct"], b["correct"])),
            "lost": sum(x > y for x, y in zip(b["correct"], a["correct"], strict=True)),
            "gained": sum(y > x for x, y in zip(b["correct"], a["correct"], strict=True)),
            "mean_logprob_before": sum(b["mean_logprob"]) / len(b["mean_logprob"]),
            "mean_logprob_after": sum(a["mean_logprob"]) / len(a["mean_logprob"]),
            "examples_after": a["outputs"][:5],
        }
    result["train_loss"] = losses
    result["held_out_per_epoch"] = per_epoch
    result["raw"] = {"before": before, "after": after}
    result["seconds"] = {
        "load_and_eval_before": t_eval,
        "train": t_train,
        "total": time.time() - t0,
    }
    if args.save_model is not None:
        model.save_pretrained(args.save_model)
        tokenizer.save_pretrained(args.save_model)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k not in ("args", "raw")}, indent=1))


if __name__ == "__main__":
    main()
