"""Cross-key config checks, run while Snakemake builds the DAG (rules/common.smk).

The JSON schema checks each key on its own; what it cannot express (a probe reading a dataset of
the wrong kind, a local model folder that does not exist, an output folder outside the working
directory, an overlay that empties `arms`) is checked here, before any job starts: a job that
fails later has already had its cached outputs deleted by Snakemake. Every error's first line
is `<key.path>: <what is wrong>`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

import yaml

from smf.data import gguf
from smf.pipeline import sweeps, variants
from smf.training.arms import registry  # never loads torch

# The dataset kind each consumer reads (data.<name>.kind).
CONSUMER_KINDS = {
    "task.dataset": "multiple_choice",
    "background.dataset": "text",
    "retrofit.recovery.dataset": "text",
}
PROBE_DATASET_KINDS = {"multiple_choice": "multiple_choice", "perplexity": "text", "qa": "qa"}
DEMO_MODEL = "demo"
# A local model may be a folder (save_pretrained) or a single GGUF file.
MODEL_FILE_SUFFIXES = (".gguf",)
# Config keys naming folders the DAG writes into: they must stay inside the working directory.
OUTPUT_DIR_KEYS = (("demo", "out_dir"),)


class ConfigError(ValueError):
    """A config mistake; the message's first line is `<key.path>: <cause>`."""


def _get(config: Mapping, path: str):
    node = config
    for part in path.split("."):
        node = node[part]
    return node


def schema_error(config: Mapping, schema_path: str | os.PathLike) -> ConfigError:
    """The most relevant schema violation, phrased with its key path on the first line.

    snakemake.utils.validate prints the whole schema before naming the key; this re-runs the
    same JSON Schema check to report the failing key first.
    """
    import jsonschema

    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(dict(config)))
    if error is None:
        return ConfigError("config: does not match config/schema.yaml")
    path = ".".join(str(p) for p in error.absolute_path) or "config"
    message = error.message.splitlines()[0]
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        if len(extra) == 1:
            path = f"{path}.{extra[0]}" if error.absolute_path else extra[0]
            message = "unknown key (not in config/schema.yaml; see docs/config.md)"
    elif error.validator == "type" and _is_float_text(error.instance):
        message += (
            f" (YAML 1.1, which Snakemake reads, takes {error.instance} without a dot for a "
            f"string: write it as {float(error.instance)!r} or with a dot and a signed "
            "exponent, e.g. 1.0e-3)"
        )
    elif "propertyNames" in error.absolute_schema_path and isinstance(error.instance, str):
        path = f"{path}.{error.instance}" if error.absolute_path else error.instance
        message = f"key not allowed here ({message}; see docs/config.md)"
    return ConfigError(f"{path}: {message}")


def _is_float_text(value: object) -> bool:
    """A string that is a number to Python but a string to YAML 1.1 (`1e-3`, `5e4`)."""
    if not isinstance(value, str):
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


def check_config(
    config: Mapping,
    workdir: str | os.PathLike,
    overlays: Iterable[str | os.PathLike] = (),
    base_layers: int | None = None,
) -> None:
    """Raise ConfigError for the first cross-key mistake; `overlays` are the --configfile files."""
    workdir = Path(workdir)
    check_overlays(overlays)
    try:  # kinds of the user's own register themselves (smf.training.arms.registry)
        registry.import_kinds(config.get(registry.MODULES_KEY) or ())
    except ValueError as err:
        raise ConfigError(str(err)) from None
    check_dataset_refs(config)
    recovery = (config["retrofit"].get("recovery") or {}).get("train", {})
    check_train("retrofit.recovery.train", "the recovery", {**config.get("train", {}), **recovery})
    check_arms(config)
    check_experiments(config)
    check_base_model(config, workdir)
    check_output_dirs(config, workdir)
    check_profile_folder(config, workdir)
    if base_layers is not None:
        bad = [i for i in config["retrofit"]["layers"] if i >= base_layers]
        if bad:
            raise ConfigError(
                f"retrofit.layers: {bad} are outside the base model's {base_layers} layers "
                f"(0..{base_layers - 1})"
            )


def check_overlays(overlays: Iterable[str | os.PathLike]) -> None:
    """`arms: {}` in an overlay removes nothing (overlays deep-merge): say so, do not ignore it."""
    for overlay in overlays:
        try:
            content = yaml.safe_load(Path(overlay).read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue  # Snakemake itself reports unreadable config files
        if isinstance(content, dict) and content.get("arms") == {}:
            raise ConfigError(
                f"arms: {overlay} sets `arms: {{}}`, which selects no arm: an overlay is "
                "deep-merged into config/config.yaml, so an empty mapping removes nothing. "
                "To run some arms only, list them in `run_arms` (e.g. `run_arms: [lora, "
                "smf_kl]`) or name them as targets (e.g. `snakemake lora smf_kl`)."
            )


def check_dataset_refs(config: Mapping) -> None:
    """Every dataset reference names a `data` key of the kind its consumer reads."""
    data = config["data"]

    def check(key: str, name: str, kind: str, consumer: str) -> None:
        if name not in data:
            raise ConfigError(f"{key}: {name!r} is not a key of `data` (have {sorted(data)})")
        have = data[name]["kind"]
        if have != kind:
            raise ConfigError(
                f"{key}: dataset {name!r} has kind {have!r} (data.{name}.kind), but {consumer} "
                f"reads a {kind} dataset"
            )

    refs = {key: _get(config, key) for key in CONSUMER_KINDS} | variants.background_refs(config)
    for key, name in refs.items():  # a variant's own background reads text as the main one
        check(key, name, CONSUMER_KINDS.get(key, "text"), key.rsplit(".", 1)[0])
    for probe, spec in config["probes"].items():
        check(
            f"probes.{probe}.dataset",
            spec["dataset"],
            PROBE_DATASET_KINDS[spec["kind"]],
            f"a {spec['kind']} probe",
        )
    if config["learning_probe"] not in config["probes"]:
        raise ConfigError(
            f"learning_probe: {config['learning_probe']!r} is not a key of `probes` "
            f"(have {sorted(config['probes'])})"
        )


def check_arms(config: Mapping) -> None:
    if not config["arms"]:
        raise ConfigError("arms: no arm is configured; the pipeline would train nothing")
    unknown = [a for a in config.get("run_arms") or [] if a not in config["arms"]]
    if unknown:
        raise ConfigError(
            f"run_arms: {unknown} are not keys of `arms` (have {sorted(config['arms'])})"
        )
    run = {arm: config["arms"][arm] for arm in config.get("run_arms") or config["arms"]}
    try:
        sweeps.check_rates(run)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    kinds = {arm: kind_of_arm(arm, spec) for arm, spec in config["arms"].items()}
    for arm in run:  # the kind's own checks (e.g. smf: top_t fits the memory)
        merged = {**config.get("train", {}), **run[arm].get("train", {})}
        check_train(f"arms.{arm}.train", f"kind {kinds[arm].name}", merged)
        try:
            kinds[arm].check_config(f"arms.{arm}", run[arm], config)
        except ValueError as err:
            raise ConfigError(str(err)) from None


def check_train(key: str, who: str, train: Mapping) -> None:
    """Train keys that only some stages or settings can honour (an arm's: merged with `train`)."""
    if train.get("precision") == "paper3_bf16" and who != "kind smf":
        raise ConfigError(
            f"{key}.precision: paper3_bf16 is paper 3's sparse stage (kind smf), not {who}; "
            "`train.precision` applies to every arm unless an arm sets its own"
        )
    grouped = train.get("group_by_length") or train.get("group_size", 1) > 1
    if train.get("order") == "hf_trainer" and grouped:
        raise ConfigError(
            f"{key}.order: hf_trainer shuffles texts one by one: it needs "
            "group_by_length false and group_size 1"
        )


def kind_of_arm(arm: str, spec: Mapping) -> registry.ArmKind:
    """The arm's kind: built in, or registered by a module of `arm_kind_modules`."""
    try:
        return registry.kind_of(spec["kind"], key=f"arms.{arm}.kind")
    except ValueError as err:
        raise ConfigError(str(err)) from None


TASK_KINDS = ("multiple_choice", "text")  # what a task's training texts can be made from


def check_experiments(config: Mapping) -> None:
    """Each further experiment's references resolve, as the main experiment's do."""
    data, shared = config["data"], config["probes"]
    for name, spec in config.get("experiments", {}).items():
        key = f"experiments.{name}"
        task = spec["task"]["dataset"]
        if task not in data:
            raise ConfigError(f"{key}.task.dataset: {task!r} is not a key of `data`")
        if data[task]["kind"] not in TASK_KINDS:
            raise ConfigError(
                f"{key}.task.dataset: dataset {task!r} has kind {data[task]['kind']!r}; a task "
                f"trains on one of {list(TASK_KINDS)}"
            )
        for probe, probe_spec in spec["probes"].items():
            if probe in shared:
                raise ConfigError(
                    f"{key}.probes.{probe}: also a top-level probe; list shared probes in "
                    f"{key}.forgetting_probes instead"
                )
            view = {"data": data, "probes": {probe: probe_spec}, "learning_probe": probe}
            try:
                check_dataset_refs({**view, **{k: config[k] for k in ("task", "background")},
                                    "retrofit": config["retrofit"]})  # fmt: skip
            except ConfigError as err:
                raise ConfigError(f"{key}.{err}") from None
        if spec["learning_probe"] not in spec["probes"]:
            raise ConfigError(
                f"{key}.learning_probe: {spec['learning_probe']!r} is not a key of "
                f"{key}.probes (have {sorted(spec['probes'])})"
            )
        extra = spec.get("extra_learning_probes", [])
        unknown = [p for p in extra if p not in spec["probes"] or p == spec["learning_probe"]]
        if unknown:
            raise ConfigError(
                f"{key}.extra_learning_probes: {unknown} must be keys of {key}.probes other "
                f"than its learning_probe {spec['learning_probe']!r} (have "
                f"{sorted(spec['probes'])})"
            )
        unknown = [p for p in spec.get("forgetting_probes", []) if p not in shared]
        if unknown:
            raise ConfigError(
                f"{key}.forgetting_probes: {unknown} are not top-level probes (have "
                f"{sorted(shared)})"
            )
        arms = {"arms": spec["arms"], "run_arms": spec.get("run_arms")}
        try:
            check_arms({**config, **arms})
        except ConfigError as err:
            raise ConfigError(f"{key}.{err}") from None
        for arm, arm_spec in spec["arms"].items():
            if arm_spec["kind"] == "smf" and arm_spec["smf"].get("retrofit") is not None:
                raise ConfigError(
                    f"{key}.arms.{arm}.smf.retrofit: further experiments start from the main "
                    "retrofit only (null)"
                )


# what each cluster executor calls: to submit, and (one of) to poll
EXECUTOR_COMMANDS = {"slurm": (("sbatch",), ("sacct", "squeue"))}


def which(command: str) -> str | None:
    return shutil.which(command)


def check_executor_commands(executor: str | None, find=which) -> None:
    """Stop before any job when the executor's commands are missing (no Slurm here), rather
    than fail every submission and show an older job's log as its failure."""
    if executor not in EXECUTOR_COMMANDS:
        return
    submit, poll = EXECUTOR_COMMANDS[executor]
    missing = [c for c in submit if find(c) is None]
    if all(find(c) is None for c in poll):
        missing.append(" or ".join(poll))
    if missing:
        raise ConfigError(
            f"executor: the {executor} executor (--profile profiles/{executor}) needs "
            f"{', '.join(f'`{m}`' for m in missing)} on PATH, not found on this machine; no job "
            "was submitted and no output was deleted. Run where the cluster's commands are, or "
            "without the profile to run jobs locally."
        )


def check_experiment_names(names: Mapping[str, str], taken: Mapping[str, str]) -> None:
    """An experiment's name ({name: its config key}) is a Snakemake target (`snakemake facts`)
    and part of its rules' names: a name already used (`all`, `tradeoff`, an arm) must fail
    naming the key, not with Snakemake's "The name all is already used by another rule"."""
    for name, key in names.items():
        if name in taken:
            raise ConfigError(
                f"{key}: the experiment name {name!r} is already {taken[name]}; "
                "an experiment's name is its Snakemake target, so rename the key (e.g. "
                f"{name}_exp)"
            )


def looks_like_local_path(model: str, workdir: Path) -> bool:
    """A hub id is `name` or `org/name`; anything else, or `dir/name` with an existing local
    `dir`, is meant as a local path."""
    if model.startswith((".", "~", "/")) or Path(model).is_absolute():
        return True
    if model.endswith(MODEL_FILE_SUFFIXES) or "\\" in model:
        return True
    parts = model.split("/")
    if len(parts) > 2:
        return True
    return len(parts) == 2 and (workdir / parts[0]).is_dir()


def check_base_model(config: Mapping, workdir: Path) -> None:
    model = config["base"]["model"]
    if model == DEMO_MODEL:
        if not config["demo"]["enabled"]:
            raise ConfigError("base.model: 'demo' needs demo.enabled: true")
        return
    if not looks_like_local_path(model, workdir):
        return  # a hub id: resolved (or reported) by the base_model job
    path = (workdir / Path(model).expanduser()).resolve()
    if path.is_dir():
        return
    if path.is_file() and path.suffix in MODEL_FILE_SUFFIXES:
        return
    found = "is a file, not a model folder or a .gguf file" if path.exists() else "does not exist"
    raise ConfigError(
        f"base.model: local path {model!r} {found} (resolved to {path}). Point it at a folder "
        "written by save_pretrained (config.json, weights, tokenizer) or a .gguf file, or use a "
        "Hugging Face hub id such as Qwen/Qwen2.5-0.5B-Instruct."
    )


DEMO_MARKER = Path("results/demo/raw")  # the demo world: only the demo profile writes it


def check_profile_folder(config: Mapping, workdir: Path) -> None:
    """The paper profile in a folder that holds the demo's results would rebuild every data
    file (their params differ): the jobs delete the demo's cached data and models first, and
    fail without hub access. Both profiles write results/, so one folder holds one profile."""
    if config["demo"]["enabled"] or not (workdir / DEMO_MARKER).is_dir():
        return
    raise ConfigError(
        f"demo.enabled: false (the paper profile), but this folder holds the demo profile's "
        f"results ({DEMO_MARKER} exists): running here would replace the demo's cached data "
        "and models. Add `--configfile config/demo.yaml` to work on the demo, or run the "
        "paper profile in another clone of the workflow."
    )


def check_output_dirs(config: Mapping, workdir: Path) -> None:
    """Folders the DAG writes into stay inside the working directory."""
    root = workdir.resolve()
    for keys in OUTPUT_DIR_KEYS:
        node = config
        for key in keys:
            node = node.get(key) if isinstance(node, Mapping) else None
        if node is None:
            continue
        path = (root / Path(str(node)).expanduser()).resolve()
        if not path.is_relative_to(root):
            raise ConfigError(
                f"{'.'.join(keys)}: {node!r} resolves to {path}, outside the working directory "
                f"{root}; the pipeline writes only below it. Use a relative folder such as "
                "results/demo/raw."
            )


def base_model_layers(config: Mapping) -> int | None:
    """Layer count of the base model when knowable offline (demo config, local folder or cache)."""
    if config["base"]["model"] == DEMO_MODEL:
        return config["base"]["demo"]["num_layers"]
    if gguf.is_gguf(config["base"]["model"]):
        if not Path(config["base"]["model"]).is_file():
            return None  # the base stage reports the missing file with how to get it
        try:  # a cut download would fail in the base job, after the base cache is deleted
            gguf.check_size(config["base"]["model"])
        except ValueError as err:
            raise ConfigError(f"base.model: {err}") from None
        return gguf.gguf_layer_count(config["base"]["model"])
    try:
        from transformers import AutoConfig

        cfg = AutoConfig.from_pretrained(config["base"]["model"], local_files_only=True)
    except (OSError, ValueError):
        return None  # not available offline yet the retrofit stage checks it
    return cfg.num_hidden_layers
