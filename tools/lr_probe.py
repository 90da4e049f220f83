"""Does an arm learn at this rate? Train it briefly and measure held-out task loss.

Accuracy on 100 questions moves by noise (about +-9 points) before a short run teaches a small
model anything, so a rate is first checked on a quieter signal: the mean token loss of
held-out task records written as training texts (the eval set, never trained on). A rate that
does not lower it does not learn; one that raises it is too high. Trains the arm with the
profile's settings for `--steps` optimizer steps per rate, using the base model, retrofit
memory, background statistics and task data the DAG has already built (run the DAG's
`background` rule first), and prints one row per rate.

    python tools/lr_probe.py --configfile config/smollm2.yaml config/smollm2_offline.yaml \\
        --arm smf_kl --lr 2e-3 2e-2 2e-1 --steps 10
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import yaml
from snakemake.utils import update_config, validate
from transformers import AutoTokenizer

from smf.data import prompts, sources
from smf.pipeline import stages
from smf.probes import perplexity
from smf.training import arms


def load_config(root: Path, overlays: list[str]) -> dict:
    """config/config.yaml with the overlays deep-merged and the schema's defaults filled in."""
    config = yaml.safe_load((root / "config" / "config.yaml").read_text())
    for overlay in overlays:
        update_config(config, yaml.safe_load((root / overlay).read_text()) or {})
    validate(config, str(root / "config" / "schema.yaml"))
    return config


def need(path: Path, rule: str) -> Path:
    """`path`, or exit naming it and the rule that builds it."""
    if not path.exists():
        sys.exit(
            f"{path}: missing (rule {rule}); build it with the DAG first, e.g. "
            "`snakemake --cores 2 results/background/stats.safetensors --configfile ...`"
        )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", nargs="*", default=[], help="the profile's overlays")
    parser.add_argument("--arm", required=True, help="an arm of the merged config")
    parser.add_argument("--lr", type=float, nargs="+", required=True, help="rates to try")
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps per rate")
    parser.add_argument("--eval-examples", type=int, default=50, help="held-out records scored")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the workflow folder")
    args = parser.parse_args()

    root = args.root.resolve()
    config = load_config(root, args.configfile)
    if args.arm not in config["arms"]:
        sys.exit(f"--arm {args.arm}: not in the merged config's arms ({sorted(config['arms'])})")
    arm_cfg = config["arms"][args.arm]
    kind, results = arm_cfg["kind"], root / "results"
    base_dir = need(results / "models" / "base", "base_model")
    task = need(results / "data" / f"{config['task']['dataset']}.jsonl", "prepare_data")
    learning = next(p for p in config["probes"].values() if p["kind"] == "multiple_choice")
    heldout = need(results / "data" / f"{learning['dataset']}.jsonl", "prepare_data")
    memory = background = None
    if kind == "smf":  # the arm's own retrofit (a retrofit_variants entry, or the main one)
        variant = arm_cfg["smf"]["retrofit"]
        suffix = "" if variant is None else f"_{variant}"
        per_run = f"seed{args.seed}" if config["seeding"] == "per_run" else ""
        memory = need(
            results / f"models/retrofit{suffix}" / per_run / "memory.safetensors", "retrofit"
        )
        background = need(
            results / f"background{suffix}" / per_run / "stats.safetensors", "background"
        )
    header = config["task"]["header"]
    records = sources.read_jsonl(heldout)[: args.eval_examples]
    texts = [prompts.mcq_training_text(r, header=header) for r in records]
    train_cfg = {**config["train"], **arm_cfg["train"]}
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    windows = perplexity.text_windows(tokenizer, texts, train_cfg["max_length"])
    start_kind = "retrofit" if kind == "smf" else "base"
    before = perplexity.mean_nll(arms.load_for_eval(start_kind, base_dir, memory), windows)
    print(f"{args.arm}: held-out loss before training {before:.4f} ({len(texts)} records)")
    print("lr\tsteps\theld_out_loss\tchange\tlast_train_loss\tseconds")
    for lr in args.lr:
        cfg = {**train_cfg, "lr": lr, "max_steps": args.steps}
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            began = time.perf_counter()
            summary = stages.finetune(
                args.arm, arm_cfg, cfg, seed=args.seed, base_dir=base_dir, task_path=task,
                header=header, out_dir=tmp / "arm", out_log=tmp / "log.jsonl",
                out_summary=tmp / "summary.json", work_dir=tmp / "work", device="cpu",
                memory_path=memory, background_path=background,
            )  # fmt: skip
            artifact = arms.artifact_path(arms.kind_of(kind), tmp / "arm")
            model = arms.load_for_eval(kind, base_dir, artifact)
            after = perplexity.mean_nll(model, windows)
        print(
            f"{lr:g}\t{summary['steps']}\t{after:.4f}\t{after - before:+.4f}\t"
            f"{summary['final_loss']:.4f}\t{time.perf_counter() - began:.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
