"""Helpers shared by all rules: config validation, wildcard values, input functions."""

import json
import os
import re

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

import smf
from smf.pipeline import config_checks, freshness, sweeps

SCHEMA = os.path.join(workflow.basedir, "config", "schema.yaml")
# validate's own message dumps the schema before the key: report the failing key path first
try:
    validate(config, "../config/schema.yaml")
except WorkflowError:
    raise config_checks.schema_error(config, SCHEMA) from None


def check_config():
    """Cross-key checks the JSON schema cannot express; fail before any job starts."""
    overlays = workflow.overwrite_configfiles or ()
    layers = config_checks.base_model_layers(config)
    config_checks.check_config(config, os.getcwd(), overlays, layers)


check_config()

# learning-rate sweeps (smf.pipeline.sweeps): every extra rate of an arm is an arm of its own; a family
# is an arm with its sweep points (one Pareto front); the main table and figures show MAIN_ARMS
FAMILIES = sweeps.families(config["arms"], config["run_arms"] or list(config["arms"]))
try:
    config["arms"] = sweeps.expand_sweeps(config["arms"])
except ValueError as err:
    raise WorkflowError(str(err)) from None
RESULTS = "results"
SMF_VERSION = (
    smf.__version__
)  # a params value: a new library release reruns every stage
# the shared chain's config (data, base, retrofit, background): part of every run's fingerprint
CHAIN = freshness.chain_fingerprint(config, SMF_VERSION)
DEVICE = config["device"]
GPU = 0 if DEVICE == "cpu" else 1  # resources: a CPU run needs no GPU slot
# base, retrofit and background run alone in the DAG; Snakemake caps this at --cores.
SEQUENTIAL_STAGE_THREADS = 8
SEEDS = config["seeds"]
MAIN_ARMS = list(FAMILIES)  # the arms this run trains, as listed
ARMS = [run for family in FAMILIES.values() for run in family]  # and their sweep points
PROBES = list(config["probes"])
DEMO = config["demo"]["enabled"]
ARM_KINDS = {arm: config["arms"][arm]["kind"] for arm in ARMS}
VARIANTS = config["retrofit_variants"]


def retrofit_of(arm):
    """The retrofit model an SMF arm starts from: `retrofit` or `retrofit_<variant>`."""
    variant = config["arms"][arm]["smf"]["retrofit"]
    return "retrofit" if variant is None else f"retrofit_{variant}"


# retrofit models this run builds: the main one (a reference row) and the variants in use
RETROFITS = list(
    dict.fromkeys(
        ["retrofit"] + [retrofit_of(a) for a in ARMS if ARM_KINDS[a] == "smf"]
    )
)
# seeding per_run (paper 3's code): each seed shuffles its own task subset and builds its own
# retrofit and background; shared: one of each (retrofit.seed) for every seed
PER_RUN = config["seeding"] == "per_run"


def experiment_spec(name, spec):
    """What the rules of one further experiment (rules/experiments.smk) need to know."""
    families = sweeps.families(spec["arms"], spec["run_arms"] or list(spec["arms"]))
    spec["arms"] = sweeps.expand_sweeps(spec["arms"])
    own = list(spec["probes"])
    learning = spec["learning_probe"]
    extra = list(spec["extra_learning_probes"])
    forgetting = [p for p in own if p != learning and p not in extra]
    forgetting += spec["forgetting_probes"]
    return {
        "task_dataset": spec["task"]["dataset"],
        "task_kind": config["data"][spec["task"]["dataset"]]["kind"],
        "header": spec["task"].get("header", ""),
        "own_probes": own,
        "learning_probe": learning,
        "extra_learning_probes": extra,
        "forgetting_probes": forgetting,
        "probes": [learning, *extra, *forgetting],
        "families": families,
        "main_arms": list(families),
        "runs": [run for family in families.values() for run in family],
    }


RUN_EXPERIMENTS = config["run_experiments"]
if RUN_EXPERIMENTS is None:
    RUN_EXPERIMENTS = list(config["experiments"])
_unknown = [e for e in RUN_EXPERIMENTS if e not in config["experiments"]]
if _unknown:
    raise WorkflowError(
        f"run_experiments: {_unknown} are not keys of `experiments` "
        f"(have {sorted(config['experiments'])})"
    )
try:
    EXPERIMENTS = {
        name: experiment_spec(name, config["experiments"][name])
        for name in RUN_EXPERIMENTS
    }
except ValueError as err:
    raise WorkflowError(f"experiments: {err}") from None

# one folder per seed inside each retrofit and background folder under per_run seeding
RETROFIT_RUN = "{retrofit}/seed{seed}" if PER_RUN else "{retrofit}"
BACKGROUND_RUN = "{background}/seed{seed}" if PER_RUN else "{background}"
RETROFIT_MODELS = (
    [f"{r}-seed{s}" for r in RETROFITS for s in SEEDS] if PER_RUN else RETROFITS
)
# an experiment's reference models: the base and the main retrofit (its forgetting scores are
# the main experiment's; only the experiment's own probes are run on them again)
EXP_REFERENCE_MODELS = ["base"] + [
    m for m in RETROFIT_MODELS if m.partition("-seed")[0] == "retrofit"
]
STD_NOTE = (
    f"± is the std over seeds {SEEDS} of the whole chain: each seed has its own task "
    "shuffle, retrofit, recovery and background (seeding: per_run, as paper 3's code)."
    if PER_RUN
    else f"± is the std over seeds {SEEDS} of the finetuning only: one task subset, retrofit "
    "and background serve every seed (seeding: shared)."
)
MODELS = ["base", *RETROFIT_MODELS] + [
    f"{arm}-seed{seed}" for arm in ARMS for seed in SEEDS
]
MAIN_MODELS = ["base", *RETROFIT_MODELS] + [
    f"{arm}-seed{seed}" for arm in MAIN_ARMS for seed in SEEDS
]
# qa probes that also report retention on the base model's correct answers (rules/retention.smk)
RETENTION_PROBES = [p for p, spec in config["probes"].items() if spec.get("retention")]
REPORT_PROBES = [
    name
    for p in PROBES
    for name in ([p, f"{p}_retention"] if p in RETENTION_PROBES else [p])
]


def one_of(names):
    """A wildcard regex matching exactly these names (sweep names hold dots)."""
    return "|".join(map(re.escape, names))


wildcard_constraints:
    arm=one_of(ARMS),
    seed=r"\d+",
    probe="|".join(PROBES),
    dataset="|".join(config["data"]),
    model=one_of(MODELS),
    retrofit="|".join(RETROFITS),
    background="|".join(f"background{r.removeprefix('retrofit')}" for r in RETROFITS),


def train_config(overrides):
    """The shared `train:` defaults with one arm's (or stage's) overrides applied."""
    return {**config["train"], **overrides}


def arm_train_config(arm):
    return train_config(config["arms"][arm].get("train", {}))


def arms_of_kind(kind):
    return [arm for arm in ARMS if ARM_KINDS[arm] == kind] or ["__none__"]


def dataset_path(name):
    return f"{RESULTS}/data/{name}.jsonl"


def source_inputs(wildcards):
    """A source path inside results/ is made by the DAG (the demo world): depend on it."""
    path = config["data"][wildcards.dataset]["source"].get("path")
    return [path] if path and path.startswith(f"{RESULTS}/") else []


def checkpoint_dir(*parts):
    """Checkpoints live outside Snakemake's outputs so a killed job can resume."""
    return os.path.join(RESULTS, "checkpoints", *map(str, parts))


def retrofit_config(wildcards):
    """The `retrofit` section (without recovery) with a variant's keys replaced; per_run
    seeding also replaces its seed with the run's."""
    spec = {k: v for k, v in config["retrofit"].items() if k != "recovery"}
    if wildcards.retrofit != "retrofit":
        spec.update(VARIANTS[wildcards.retrofit.removeprefix("retrofit_")])
    if PER_RUN:
        spec["seed"] = int(wildcards.seed)
    return spec


def background_of(retrofit, seed):
    """A retrofit model's background statistics folder: background[_<variant>][/seed<n>]."""
    name = f"background{retrofit.removeprefix('retrofit')}"
    return f"{RESULTS}/{BACKGROUND_RUN.format(background=name, seed=seed)}"


def retrofit_memory(retrofit, seed=None):
    folder = RETROFIT_RUN.format(retrofit=retrofit, seed=seed)
    return f"{RESULTS}/models/{folder}/memory.safetensors"


def task_path(seed):
    """The task's training records: one file, or (per_run) one shuffle per seed."""
    name = config["task"]["dataset"]
    return f"{RESULTS}/data/{name}.seed{seed}.jsonl" if PER_RUN else dataset_path(name)


def model_kind(model):
    if model == "base":
        return model
    if model in RETROFIT_MODELS:
        return "retrofit"
    arm = model.rsplit("-seed", 1)[0]
    return ARM_KINDS[arm]


def model_artifact(model):
    """The file or folder that holds what a model adds to the base (None for the base)."""
    if model == "base":
        return None
    if model in RETROFIT_MODELS:
        name, _, seed = model.partition("-seed")
        return retrofit_memory(name, seed)
    arm, seed = model.rsplit("-seed", 1)
    run = f"{RESULTS}/runs/{arm}/seed{seed}"
    if ARM_KINDS[arm] == "smf":
        return f"{run}/memory.safetensors"
    return f"{run}/{'model' if ARM_KINDS[arm] == 'full' else 'adapter'}"


def model_fingerprint(model):
    """The config a model's results depend on: evaluate and report rules carry it in params,
    so a changed run config reruns them even after a failed retrain deleted the run."""
    if model == "base":
        return freshness.fingerprint(CHAIN, model)
    if model in RETROFIT_MODELS:
        variant = model.partition("-seed")[0].removeprefix("retrofit").lstrip("_")
        return freshness.fingerprint(
            CHAIN, model, freshness.variant_part(config, variant or None)
        )
    arm, seed = model.rsplit("-seed", 1)
    run = [config["arms"][arm], arm_train_config(arm), int(seed)]
    variant = config["arms"][arm].get("smf", {}).get("retrofit")
    return freshness.fingerprint(
        CHAIN, *run, config["task"]["header"], freshness.variant_part(config, variant)
    )


def fingerprints(models):
    """{model: fingerprint}: a report rule's params (see model_fingerprint)."""
    return {model: model_fingerprint(model) for model in models}


def eval_inputs(wildcards):
    inputs = {"base": f"{RESULTS}/models/base"}
    for probe, spec in config["probes"].items():
        inputs[f"data_{probe}"] = dataset_path(spec["dataset"])
    artifact = model_artifact(wildcards.model)
    if artifact:
        inputs["artifact"] = artifact
    return inputs


def eval_files(models=MODELS):
    return [f"{RESULTS}/eval/{m}/{p}.json" for m in models for p in PROBES]


def arm_models(arm):
    return [f"{arm}-seed{seed}" for seed in SEEDS]


def report_eval_files(models=MODELS):
    """Every eval JSON the report reads: the probes' and the retention files."""
    return [f"{RESULTS}/eval/{m}/{p}.json" for m in models for p in REPORT_PROBES]


def job_resources(stage):
    """A stage's cluster request (config job_resources) as the Slurm executor's resources."""
    spec = config["job_resources"][stage]
    return {
        "mem_mb": spec["mem_mb"],
        "runtime": spec["runtime"],
        "cpus_per_task": spec["cpus"],
    }


onstart:
    # after the DAG, before any job: a cluster run on a machine without the cluster's commands
    # would fail each submission after Snakemake deleted the job's outputs
    config_checks.check_executor_commands(
        getattr(workflow.executor_plugin, "name", None), config_checks.which
    )
    if (
        getattr(workflow.executor_plugin, "name", "local")
        in config_checks.EXECUTOR_COMMANDS
    ):
        freshness.clear_stale_logs(
            str(log) for job in workflow.dag.needrun_jobs() for log in job.log
        )
