"""Lab, outside the DAG: does a memory pretrained *with* the model learn new facts better?

Not the product (see lab/README.md).

Paper 1's model is pretrained with its memory layer; the pipeline retrofits memories into a
finished model (papers 2-3). This script pretrains the demo model with memories attached from
the start (every parameter trains, with the demo profile's pretraining settings), then trains it
on the fact task (every memory value row densely, or every parameter) and prints held-out
accuracy, accuracy on a question form training taught, and TriviaQA. docs/lab/demo.md.

  python lab/lab_memory_pretraining.py pretrain RESULTS model.pt [--n-keys 32]
  python lab/lab_memory_pretraining.py train RESULTS model.pt {values,full} LR EPOCHS

RESULTS is the results/ folder of a finished demo run (its tokenizer, pretraining text, fact
task and TriviaQA records). CPU, seed 0.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from lr_probe import load_config, need  # lab/, the script's folder, is on sys.path
from transformers import AutoModelForCausalLM, AutoTokenizer

from smf.data import sources
from smf.demo import model as demo_model
from smf.method.memory import MemoryConfig
from smf.method.retrofit import RetrofitConfig, retrofit
from smf.pipeline.stages import texts_of
from smf.probes import qa
from smf.training import arms
from smf.training.config import TrainConfig
from smf.training.loop import train

REPO = Path(__file__).resolve().parents[1]


def build(config: dict, tokenizer, n_keys: int) -> torch.nn.Module:
    """The demo model at its pretraining init, with additive memories that start non-zero."""
    d = config["base"]["demo"]
    model_cfg = demo_model.tiny_qwen2_config_for(
        tokenizer, hidden_size=d["hidden_size"], num_layers=d["num_layers"],
        intermediate_size=d["intermediate_size"], num_heads=d["num_heads"],
        num_kv_heads=d["num_kv_heads"],
    )  # fmt: skip
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(model_cfg)
    memory = {**config["retrofit"]["memory"], "n_keys": n_keys}
    rcfg = RetrofitConfig(
        layers=list(config["retrofit"]["layers"]),
        memory=MemoryConfig(hidden_size=d["hidden_size"], **memory),
        zero_init_output=False,  # the memory trains with the model, so it starts live
    )
    return retrofit(model, rcfg, seed=0)


def taught_form(results: Path, held_out: list[dict], group: int) -> list[dict]:
    """Each fact's first question/answer text from training, as a QA record."""
    texts = texts_of(results / "data/facts_train.jsonl")
    records = []
    for i, fact in enumerate(held_out):
        qa = next(t for t in texts[group * i : group * (i + 1)] if t.startswith("Question: "))
        question, answer = qa.removeprefix("Question: ").split("\nAnswer: ")
        records.append(
            {"id": fact["id"], "question": question, "answer": answer, "aliases": [answer]}
        )
    return records


def scores(model, tokenizer, results: Path, group: int) -> dict[str, float]:
    held_out = sources.read_jsonl(results / "data/facts_eval.jsonl")
    probe_sets = {
        "held_out": held_out,
        "taught_form": taught_form(results, held_out, group),
        "triviaqa": sources.read_jsonl(results / "data/triviaqa.jsonl"),
    }
    out = {}
    for name, records in probe_sets.items():
        r = qa.qa_accuracy(model.eval(), tokenizer, records, protocol="paper3", batch_size=16)
        out[name] = round(100 * r["value"], 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("command", choices=["pretrain", "train"])
    ap.add_argument("results", type=Path)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("what", nargs="?", choices=["values", "full"])
    ap.add_argument("lr", nargs="?", type=float)
    ap.add_argument("epochs", nargs="?", type=int)
    ap.add_argument("--n-keys", type=int, default=32, help="memory sub-keys (slots: its square)")
    args = ap.parse_args()
    config = load_config(REPO, ["config/demo.yaml"])
    tokenizer = AutoTokenizer.from_pretrained(need(args.results / "models/base", "base_model"))
    task = config["fact_task"]
    group = task["says_per_fact"] + task["asks_per_fact"]
    start = time.time()
    if args.command == "pretrain":
        model = build(config, tokenizer, args.n_keys)
        cfg = TrainConfig(seed=0, **config["base"]["demo"]["pretrain"])
        model, opt = arms.setup_full(model, cfg)
        texts = texts_of(args.results / "demo/raw/pretrain.jsonl")
        train(model, tokenizer, texts, cfg, opt, work_dir=tempfile.mkdtemp(), fingerprint="lab")
        torch.save({"state": model.state_dict(), "n_keys": args.n_keys}, args.checkpoint)
    else:
        if args.epochs is None:
            ap.error("train needs WHAT LR EPOCHS")
        saved = torch.load(args.checkpoint)
        model = build(config, tokenizer, saved["n_keys"])
        model.load_state_dict(saved["state"])
        facts = config["experiments"]["facts"]["train"]  # the fact experiment's batches
        cfg = TrainConfig(**{**facts, "lr": args.lr, "epochs": args.epochs, "seed": 0})
        if args.what == "full":
            model, opt = arms.setup_full(model, cfg)
        else:  # every value row the batch reads, densely: the ceiling of any row selection
            model, opt = arms.setup_smf(model, cfg, "adam")
        texts = texts_of(args.results / "data/facts_train.jsonl")
        train(model, tokenizer, texts, cfg, opt, work_dir=tempfile.mkdtemp(), fingerprint="lab")
    seconds = round(time.time() - start)
    print(json.dumps({"command": args.command, "what": args.what, "lr": args.lr,
                      "epochs": args.epochs, "seconds": seconds,
                      **scores(model, tokenizer, args.results, group)}))  # fmt: skip


if __name__ == "__main__":
    main()
