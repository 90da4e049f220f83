"""Arm kinds as plug-ins: a kind of the user's own, written as a user would (one small module
named in the config's `arm_kind_modules`), trains through the finetune stage, is evaluated
through load_for_eval and passes the config checks; an unknown kind fails naming its key."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from conftest import make_tiny_qwen2

from smf.pipeline import stages
from smf.pipeline.config_checks import ConfigError, check_config
from smf.training import arms
from smf.training.arms import registry

REPO = Path(__file__).resolve().parents[2]
TEXTS = [f"Question: what is item {i}?\nAnswer: number {i * 7 % 13}" for i in range(12)]

# The whole plug-in: a kind that trains only the RMSNorm weights (full finetuning's artifact).
NORMS_ONLY = textwrap.dedent("""
    from transformers import AutoModelForCausalLM

    from smf.training.arms import ArmKind, Trainable, adamw, freeze, register


    class NormsOnly(ArmKind):
        def setup(self, run):
            model = run.load_base(trains_base=True)
            freeze(model)
            params = [p for name, p in model.named_parameters() if "norm" in name]
            for p in params:
                p.requires_grad_(True)
            return Trainable(model, adamw(params, run.train))

        def load(self, base_dir, artifact, dtype):
            return AutoModelForCausalLM.from_pretrained(artifact, dtype=dtype)


    register(NormsOnly("norms_only", artifact="model", artifact_is_dir=True))
""")


@pytest.fixture
def plugin(tmp_path):
    """The user's module, as a .py file; unregistered again after the test."""
    path = tmp_path / "kinds" / "norms_only.py"
    path.parent.mkdir()
    path.write_text(NORMS_ONLY)
    before = set(sys.modules)
    yield path
    registry.KINDS.pop("norms_only", None)
    for name in set(sys.modules) - before:
        if name.startswith("smf_arm_kinds_"):
            del sys.modules[name]


@pytest.fixture
def base(tmp_path, tokenizer) -> Path:
    path = tmp_path / "base"
    make_tiny_qwen2(seed=0).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def finetune(tmp_path, base, arm_cfg: dict, kind_modules, arm: str = "norms"):
    task = tmp_path / "task.jsonl"
    task.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    train_cfg = dict(lr=0.05, max_steps=3, micro_batch_size=4, grad_accum=1, warmup_steps=0,
                     checkpoint_every=0)  # fmt: skip
    run = tmp_path / "runs" / arm / "seed0"
    summary = stages.finetune(  # out_dir: the artifact itself, for a kind with a folder
        arm, arm_cfg, train_cfg, seed=0, base_dir=base, task_path=task, header="",
        out_dir=run / "model", out_log=run / "train_log.jsonl", out_summary=run / "summary.json",
        work_dir=tmp_path / "ck", device="cpu", task_kind="text", kind_modules=kind_modules,
    )  # fmt: skip
    return summary, run


def test_a_users_kind_trains_through_the_stage_and_loads_for_evaluation(tmp_path, base, plugin):
    summary, run = finetune(tmp_path, base, {"kind": "norms_only"}, [str(plugin)])
    kind = registry.kind_of("norms_only")
    assert (kind.artifact, kind.artifact_is_dir, kind.needs_retrofit) == ("model", True, False)
    assert summary["kind"] == "norms_only" and summary["steps"] == 3
    assert (run / "summary.json").is_file() and (run / "train_log.jsonl").is_file()
    reference = make_tiny_qwen2(seed=0)
    norms = {n for n, _ in reference.named_parameters() if "norm" in n}
    assert summary["trainable_parameters"] == sum(
        p.numel() for n, p in reference.named_parameters() if n in norms
    )
    model = arms.load_for_eval("norms_only", base, run / kind.artifact)
    assert not model.training
    trained = dict(model.named_parameters())
    moved = {n for n, p in reference.named_parameters() if not torch.equal(trained[n], p)}
    assert moved == norms  # every norm trained, nothing else moved


def test_importing_a_kind_twice_registers_it_once(plugin):
    registry.import_kinds([str(plugin)])
    kind = registry.kind_of("norms_only")
    registry.import_kinds([str(plugin)])
    assert registry.kind_of("norms_only") is kind


def test_the_built_in_kinds_keep_what_the_rules_read():
    got = {n: (k.artifact, k.artifact_is_dir, k.needs_retrofit) for n, k in arms.KINDS.items()}
    assert got["full"] == ("model", True, False)
    assert got["lora"] == ("adapter", True, False)
    assert got["smf"] == ("memory.safetensors", False, True)


def test_an_unknown_kind_names_its_key(tmp_path, base):
    with pytest.raises(ValueError, match=r"^arms\.prefix_arm\.kind: unknown arm kind 'prefix'"):
        finetune(tmp_path, base, {"kind": "prefix"}, [], arm="prefix_arm")


def test_a_module_that_cannot_be_imported_names_the_config_key(tmp_path):
    with pytest.raises(ValueError, match=r"^arm_kind_modules: cannot import 'no_such_kinds'"):
        registry.import_kinds(["no_such_kinds"])
    with pytest.raises(ValueError, match=r"^arm_kind_modules: cannot import '.*missing\.py'"):
        registry.import_kinds([str(tmp_path / "missing.py")])


# --------------------------------------------------------------------------- config checks


def merged_config(overlay: dict) -> dict:
    """config.yaml + demo.yaml + overlay, deep-merged and schema-defaulted like Snakemake."""
    from snakemake.utils import update_config, validate

    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    update_config(config, yaml.safe_load((REPO / "config/demo.yaml").read_text()))
    update_config(config, overlay)
    validate(config, str(REPO / "config/schema.yaml"))
    return config


def test_the_config_names_the_users_module_and_its_kind(tmp_path, plugin):
    overlay = {
        "arm_kind_modules": [str(plugin)],
        "arms": {"norms": {"kind": "norms_only", "train": {"lr": 1.0e-3}}},
    }
    config = merged_config(overlay)
    config["run_arms"] = [*config["run_arms"], "norms"]
    check_config(config, tmp_path)
    assert merged_config({})["arm_kind_modules"] == []  # the default: built-in kinds only


def test_the_config_checks_name_an_unknown_kind(tmp_path):
    config = merged_config({"arms": {"adapter": {"kind": "prefix", "train": {"lr": 1.0}}}})
    with pytest.raises(ConfigError, match=r"^arms\.adapter\.kind: unknown arm kind 'prefix'"):
        check_config(config, tmp_path)
    overlay = {"experiments": {"facts": {"arms": {"odd": {"kind": "odd", "train": {"lr": 1.0}}}}}}
    with pytest.raises(ConfigError, match=r"^experiments\.facts\.arms\.odd\.kind: unknown"):
        check_config(merged_config(overlay), tmp_path)
