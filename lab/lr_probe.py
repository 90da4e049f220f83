"""Does an arm learn at this rate? Train it briefly and measure held-out task loss.

Lab, not the product (see lab/README.md).

Accuracy on 100 questions moves by noise (about +-9 points) before a short run teaches a small
model anything, so a rate is first checked on a quieter signal: the mean token loss of
held-out task records written as training texts (the eval set, never trained on). A rate that
does not lower it does not learn; one that raises it is too high. Trains the arm with the
profile's settings for `--steps` optimizer steps per rate, using the base model, retrofit
memory, background statistics and task data the DAG has already built (run the DAG's
`background` rule first), and prints one row per rate.

    python lab/lr_probe.py --configfile config/smollm2.yaml config/smollm2_offline.yaml \\
        --arm smf_kl --lr 2e-3 2e-2 2e-1 --steps 10

`--experiment` probes an arm of one of `experiments` instead (its task, train settings and
learning probe). A qa learning probe (the real-fact task) is scored as the report's continuous
learning axis: the mean log-prob per token of each record's gold answer after the probe's
prompt, teacher-forced (smf.probes.qa.gold_logprobs). Its records are the facts being taught,
so a short probe moves it by the share of facts its steps reached; compare rates, not runs.

    python lab/lr_probe.py --configfile config/smollm2.yaml config/smollm2_offline.yaml \\
        --experiment real_facts --arm smf_kl --lr 1 10 100 --steps 20 --optimizer sgd
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

from smf.data import prompts as prompts_mod
from smf.data import sources
from smf.pipeline import stages
from smf.probes import perplexity, qa
from smf.training import arms
from smf.training.arms.registry import kind_of


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


def held_out_score(model_kind, base_dir, artifact, held_out) -> float:
    """The held-out signal of a model: task loss (lower is better) or gold log-prob."""
    model = arms.load_for_eval(model_kind, base_dir, artifact)
    kind, payload = held_out
    if kind == "loss":
        return perplexity.mean_nll(model, payload)
    tokenizer, prompts, records, batch_size = payload
    gold = qa.gold_logprobs(model, tokenizer, prompts, records, batch_size)
    return sum(lp / n for lp, n in gold) / len(gold)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", nargs="*", default=[], help="the profile's overlays")
    parser.add_argument("--experiment", help="one of `experiments` (default: the main one)")
    parser.add_argument("--arm", required=True, help="an arm of the merged config")
    parser.add_argument("--lr", type=float, nargs="+", required=True, help="rates to try")
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps per rate")
    parser.add_argument("--optimizer", help="an SMF arm's smf.optimizer instead of its own")
    parser.add_argument("--eval-examples", type=int, default=50, help="held-out records scored")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the workflow folder")
    args = parser.parse_args()

    root = args.root.resolve()
    config = load_config(root, args.configfile)
    if args.experiment is None:
        spec, exp_train = config, {}
    elif args.experiment in config["experiments"]:
        spec = config["experiments"][args.experiment]
        exp_train = spec.get("train", {})
    else:
        have = sorted(config["experiments"])
        sys.exit(f"--experiment {args.experiment}: not in `experiments` ({have})")
    if args.arm not in spec["arms"]:
        sys.exit(f"--arm {args.arm}: not in the merged config's arms ({sorted(spec['arms'])})")
    arm_cfg = dict(spec["arms"][args.arm])
    kind = kind_of(arm_cfg["kind"])
    if args.optimizer is not None:
        if "smf" not in arm_cfg:
            sys.exit(f"--optimizer: arm {args.arm} has no `smf:` block (an SMF arm's setting)")
        arm_cfg["smf"] = {**arm_cfg["smf"], "optimizer": args.optimizer}
    # The inputs are read where the DAG's shared stages write them (rules/common.smk):
    # results/models/base, results/data/<dataset>.jsonl (not the per_run seeding's
    # <dataset>.seed<n>.jsonl), results/models/retrofit[_<variant>][/seed<n>]/memory.safetensors
    # and results/background[_<variant>][/seed<n>]/stats.safetensors. No run folder is read: the
    # arm trains into a temporary folder laid out as a run's (<tmp>/run/<kind's artifact>).
    results = root / "results"
    base_dir = need(results / "models" / "base", "base_model")
    task_dataset = spec["task"]["dataset"]
    task = need(results / "data" / f"{task_dataset}.jsonl", "prepare_data")
    memory = background = None
    if kind.needs_retrofit:  # the arm's own retrofit (a retrofit_variants entry, or the main one)
        variant = arm_cfg["smf"]["retrofit"]
        suffix = "" if variant is None else f"_{variant}"
        per_run = f"seed{args.seed}" if config["seeding"] == "per_run" else ""
        memory = need(
            results / f"models/retrofit{suffix}" / per_run / "memory.safetensors", "retrofit"
        )
        background = need(
            results / f"background{suffix}" / per_run / "stats.safetensors", "background"
        )
    header = spec["task"].get("header", "")
    train_cfg = {**config["train"], **exp_train, **arm_cfg["train"]}
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    if args.experiment is None:  # the main experiment: its multiple-choice probe as task texts
        learning = next(p for p in config["probes"].values() if p["kind"] == "multiple_choice")
    else:
        learning = {**config["probes"], **spec["probes"]}[spec["learning_probe"]]
    heldout = need(results / "data" / f"{learning['dataset']}.jsonl", "prepare_data")
    records = sources.read_jsonl(heldout)[: args.eval_examples]
    if learning["kind"] == "qa":
        what, better = "gold log-prob per token", "higher"
        prompts = qa.probe_prompts(records, learning["protocol"])
        held_out = ("gold", (tokenizer, prompts, records, config["eval"]["batch_size"]))
    elif learning["kind"] == "multiple_choice":
        what, better = "loss", "lower"
        texts = [prompts_mod.mcq_training_text(r, header=header) for r in records]
        held_out = ("loss", perplexity.text_windows(tokenizer, texts, train_cfg["max_length"]))
    else:
        sys.exit(f"learning probe kind {learning['kind']!r}: the probe reads qa or multiple_choice")
    start_kind = "retrofit" if kind.needs_retrofit else "base"
    before = held_out_score(start_kind, base_dir, memory, held_out)
    print(
        f"{args.arm}: held-out {what} before training {before:.4f} ({len(records)} records, "
        f"{better} is better)"
    )
    print("lr\tsteps\theld_out\tchange\tlast_train_loss\tseconds")
    task_kind = config["data"][task_dataset]["kind"]
    for lr in args.lr:
        cfg = {**train_cfg, "lr": lr, "max_steps": args.steps}
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            artifact = tmp / "run" / kind.artifact  # as the finetune rules name it
            began = time.perf_counter()
            summary = stages.finetune(
                args.arm, arm_cfg, cfg, seed=args.seed, base_dir=base_dir, task_path=task,
                header=header, out_dir=artifact if kind.artifact_is_dir else artifact.parent,
                out_log=tmp / "log.jsonl", out_summary=tmp / "summary.json",
                work_dir=tmp / "work", device="cpu", memory_path=memory,
                background_path=background, task_kind=task_kind,
            )  # fmt: skip
            after = held_out_score(kind.name, base_dir, artifact, held_out)
        print(
            f"{lr:g}\t{summary['steps']}\t{after:.4f}\t{after - before:+.4f}\t"
            f"{summary['final_loss']:.4f}\t{time.perf_counter() - began:.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
