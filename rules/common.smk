"""Helpers shared by all rules: config validation, wildcard values, input functions."""

import functools
import json
import os
import re

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

import smf
from smf.pipeline import config_checks, freshness, sweeps, variants
from smf.training.arms.registry import KINDS

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

# Experiments: the main one (config `main_experiment`, described by the top-level task, probes,
# learning_probe, arms and run_arms) and the further ones in `experiments` (each with its own
# task, probes and arms). Every experiment writes under results/<name>/ with the same rules
# (rules/finetune.smk, evaluate.smk, report.smk: an {experiment} wildcard); they share the data,
# the base model, the retrofits, the background statistics and the reference models' (base,
# retrofit) scores on the top-level probes, which the main experiment makes.
# Learning-rate sweeps (smf.pipeline.sweeps): every extra rate of an arm is an arm of its own; a
# family is an arm with its sweep points (one Pareto front); the main tables show `main_arms`.
RESULTS = "results"
MAIN = config["main_experiment"]
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
PROBES = list(config["probes"])  # the top-level probes: the main experiment's, shared
DEMO = config["demo"]["enabled"]
# qa probes that also report retention on the base model's correct answers (rules/retention.smk)
RETENTION_PROBES = [p for p, spec in config["probes"].items() if spec.get("retention")]
# seeding per_run (paper 3's code): each seed shuffles its own task subset and builds its own
# retrofit and background; shared: one of each (retrofit.seed) for every seed
PER_RUN = config["seeding"] == "per_run"


def experiment_spec(spec, train, probe_specs, probes, learning, extra):
    """What the rules of one experiment need to know. `spec` holds its task, arms and run_arms
    (the main experiment: the top-level keys), `train` its own train overrides, `probes` every
    probe it reports, in order: `learning` measures learning (and each of `extra`, its own
    trade-off report), the others forgetting."""
    families = sweeps.families(spec["arms"], spec["run_arms"] or list(spec["arms"]))
    spec["arms"] = sweeps.expand_sweeps(spec["arms"])  # in config too: scripts read it
    # an arm's own `seeds` (schema: arms.NAME.seeds) leave its settings, so no cached run goes
    # stale by them and a new seed trains only that seed
    seeds = {
        a: spec["arms"][a].pop(sweeps.SEEDS_KEY, None) or SEEDS for a in spec["arms"]
    }
    runs = [run for family in families.values() for run in family]
    reported = [
        name
        for p in probes
        for name in ([p, f"{p}_retention"] if p in RETENTION_PROBES else [p])
    ]
    return {
        "arms": spec["arms"],
        "train": train,
        "kinds": {arm: spec["arms"][arm]["kind"] for arm in runs},
        "task_dataset": spec["task"]["dataset"],
        "task_kind": config["data"][spec["task"]["dataset"]]["kind"],
        "header": spec["task"].get("header", ""),
        "probe_specs": {p: probe_specs[p] for p in probes},
        "probes": probes,
        "learning_probe": learning,
        "extra_learning_probes": extra,
        "report_probes": reported,  # with {probe}_retention after each retention probe
        "forgetting_probes": [p for p in reported if p != learning and p not in extra],
        "families": families,
        "main_arms": list(families),  # the arms it trains, as listed
        "runs": runs,  # and their sweep points
        "seeds": seeds,  # run -> its seeds
    }


def further_experiment(spec):
    """One of `experiments`: its own probes (the learning ones first), then the top-level
    probes it lists as forgetting probes."""
    learning, extra = spec["learning_probe"], list(spec["extra_learning_probes"])
    own = [p for p in spec["probes"] if p != learning and p not in extra]
    probes = [learning, *extra, *own, *spec["forgetting_probes"]]
    specs = {**config["probes"], **spec["probes"]}
    return experiment_spec(spec, spec.get("train", {}), specs, probes, learning, extra)


RUN_EXPERIMENTS = config["run_experiments"]
if RUN_EXPERIMENTS is None:
    RUN_EXPERIMENTS = list(config["experiments"])
_unknown = [e for e in RUN_EXPERIMENTS if e not in config["experiments"]]
if _unknown:
    raise WorkflowError(
        f"run_experiments: {_unknown} are not keys of `experiments` "
        f"(have {sorted(config['experiments'])})"
    )
if MAIN in config["experiments"]:
    raise WorkflowError(
        f"main_experiment: {MAIN!r} is also a key of `experiments`; the main experiment is "
        "described by the top-level task, probes and arms, so name one of them otherwise"
    )
# the main experiment: every top-level probe on every model, in config order
try:
    EXPERIMENTS = {
        MAIN: experiment_spec(
            config, {}, config["probes"], PROBES, config["learning_probe"], []
        )
    }
except ValueError as err:
    raise WorkflowError(str(err)) from None
# every configured experiment has its rules and named target; `all` builds the main one and
# RUN_EXPERIMENTS (ALL_EXPERIMENTS)
try:
    for _name in config["experiments"]:
        EXPERIMENTS[_name] = further_experiment(config["experiments"][_name])
except ValueError as err:
    raise WorkflowError(f"experiments: {err}") from None
ALL_EXPERIMENTS = [MAIN, *RUN_EXPERIMENTS]
FAMILIES = EXPERIMENTS[MAIN]["families"]  # the main experiment's arms: named targets


def arm_spec(experiment, arm):
    return EXPERIMENTS[experiment]["arms"][arm]


def arm_kind(experiment, arm):
    """The arm's entry in the arm-kind registry (smf.training.arms.registry)."""
    return KINDS[EXPERIMENTS[experiment]["kinds"][arm]]


def retrofit_of(experiment, arm):
    """The retrofit model an arm starts from: `retrofit` or `retrofit_<variant>`."""
    variant = arm_spec(experiment, arm).get("smf", {}).get("retrofit")
    return "retrofit" if variant is None else f"retrofit_{variant}"


def retrofits_of(experiment):
    """The retrofit models an experiment's report shows: the main one and its arms' variants."""
    spec = EXPERIMENTS[experiment]
    used = [
        retrofit_of(experiment, arm)
        for arm in spec["runs"]
        if arm_kind(experiment, arm).needs_retrofit
    ]
    return list(dict.fromkeys(["retrofit", *used]))


# retrofit models this run builds: the main one (a reference row) and the variants in use
RETROFITS = list(dict.fromkeys(r for e in EXPERIMENTS for r in retrofits_of(e)))
# one folder per seed inside each retrofit and background folder under per_run seeding
RETROFIT_RUN = "{retrofit}/seed{seed}" if PER_RUN else "{retrofit}"
BACKGROUND_RUN = "{background}/seed{seed}" if PER_RUN else "{background}"
# every seed some run trains with (arms may list their own)
ALL_SEEDS = sorted(
    {s for e in EXPERIMENTS.values() for seeds in e["seeds"].values() for s in seeds}
)
RETROFIT_MODELS = (
    [f"{r}-seed{s}" for r in RETROFITS for s in ALL_SEEDS] if PER_RUN else RETROFITS
)
STD_NOTE = (
    "± is the std over each row's seeds (its Seeds column) of the whole chain: each seed has "
    "its own task shuffle, retrofit, recovery and background (seeding: per_run, as paper 3's "
    "code)."
    if PER_RUN
    else "± is the std over each row's seeds (its Seeds column) of the finetuning only: one "
    "task subset, retrofit and background serve every seed (seeding: shared)."
)


def run_seeds(experiment, run):
    """A run's seeds: its arm's own `seeds`, else the top-level ones."""
    return EXPERIMENTS[experiment]["seeds"][run]


def run_models(experiment, runs=None):
    """`{arm}-seed{seed}` of the experiment's runs (all of them, or these)."""
    runs = EXPERIMENTS[experiment]["runs"] if runs is None else runs
    return [f"{arm}-seed{seed}" for arm in runs for seed in run_seeds(experiment, arm)]


@functools.cache  # asked for every eval file of the DAG
def reference_models(experiment):
    """The base model and the experiment's retrofit models (a row each in its tables)."""
    used = retrofits_of(experiment)
    return ["base"] + [m for m in RETROFIT_MODELS if m.partition("-seed")[0] in used]


def own_probes(experiment):
    """The probes the experiment runs on the reference models itself: all of the main
    experiment's; a further experiment's own (its forgetting probes' scores are the main's).
    """
    if experiment == MAIN:
        return PROBES
    return list(config["experiments"][experiment]["probes"])


def eval_probes(experiment, model):
    """The probes one evaluation job of an experiment runs on one model."""
    if model in reference_models(experiment):
        return own_probes(experiment)
    return EXPERIMENTS[experiment]["probes"]


def one_of(names):
    """A wildcard regex matching exactly these names (sweep names hold dots)."""
    return "|".join(map(re.escape, names)) or "__none__"


# an experiment's evaluation jobs: one rule per list of probes (outputs cannot vary with a
# wildcard): (rule name, experiment, models, probes). The main experiment runs every probe on
# every model; a further one its own probes on the reference models and all of its on its arms.
EVAL_RULES = []
for _exp in EXPERIMENTS:
    if own_probes(_exp) == EXPERIMENTS[_exp]["probes"]:
        EVAL_RULES.append(
            (
                f"evaluate_{_exp}",
                _exp,
                reference_models(_exp) + run_models(_exp),
                own_probes(_exp),
            )
        )
    else:
        EVAL_RULES.append(
            (
                f"evaluate_{_exp}_reference",
                _exp,
                reference_models(_exp),
                own_probes(_exp),
            )
        )
        EVAL_RULES.append(
            (f"evaluate_{_exp}", _exp, run_models(_exp), EXPERIMENTS[_exp]["probes"])
        )
MODELS = list(dict.fromkeys(m for rule in EVAL_RULES for m in rule[2]))
ALL_PROBES = list(dict.fromkeys(p for rule in EVAL_RULES for p in rule[3]))


wildcard_constraints:
    experiment=one_of(EXPERIMENTS),
    arm=one_of(dict.fromkeys(a for e in EXPERIMENTS.values() for a in e["runs"])),
    seed=r"\d+",
    probe=one_of(ALL_PROBES),
    dataset="|".join(config["data"]),
    model=one_of(MODELS),
    retrofit="|".join(RETROFITS),
    background="|".join(f"background{r.removeprefix('retrofit')}" for r in RETROFITS),


def train_config(overrides):
    """The shared `train:` defaults with one arm's (or stage's) overrides applied."""
    return {**config["train"], **overrides}


def arm_train_config(experiment, arm):
    """Top-level `train:`, then the experiment's (a further one's `train:`), then the arm's."""
    spec = EXPERIMENTS[experiment]
    return train_config({**spec["train"], **arm_spec(experiment, arm).get("train", {})})


def run_lrs(experiment):
    """{run: learning rate} of an experiment's runs, sweep points included (the trade-off
    orders each arm's runs by it)."""
    runs = EXPERIMENTS[experiment]["runs"]
    return {run: float(arm_train_config(experiment, run)["lr"]) for run in runs}


def probe_data(experiment, probe):
    """{probe: its data file} (the chance baseline reads the answer sets), or {}."""
    dataset = EXPERIMENTS[experiment]["probe_specs"][probe].get("dataset")
    return {probe: dataset_path(dataset)} if dataset else {}


def arms_of_kind(kind):
    """The {arm} regex of kind's finetune rule: its runs, each only inside its experiment's
    runs/ folder (two experiments may give one arm name different kinds)."""
    alternatives = [
        f"(?<=/{re.escape(exp)}/runs/)(?:{one_of(runs)})"
        for exp, spec in EXPERIMENTS.items()
        for runs in [[a for a in spec["runs"] if spec["kinds"][a] == kind]]
        if runs
    ]
    return "|".join(alternatives) or "__none__"


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
    variant = wildcards.retrofit.removeprefix("retrofit").lstrip("_")
    spec = variants.retrofit_settings(config, variant)
    if PER_RUN:
        spec["seed"] = int(wildcards.seed)
    return spec


def background_of(retrofit, seed):
    """A retrofit model's background statistics folder: background[_<variant>][/seed<n>]."""
    name = f"background{retrofit.removeprefix('retrofit')}"
    return f"{RESULTS}/{BACKGROUND_RUN.format(background=name, seed=seed)}"


def background_settings(background):
    """A background folder's settings: the top-level `background` with its retrofit variant's
    `background:` keys replaced."""
    variant = background.removeprefix("background").lstrip("_")
    return variants.background_settings(config, variant)


def background_corpus(wildcards):
    """The background's dataset: as configured, or (shuffle_seed: run) shuffled by the run's
    seed (per_run seeding; shared: retrofit.seed) before its limit (rule prepare_task_shuffle).
    Returns (path, the data spec it is prepared from)."""
    settings = background_settings(wildcards.background)
    name = settings["dataset"]
    if settings["shuffle_seed"] != "run":
        return dataset_path(name), config["data"][name]
    seed = int(wildcards.seed) if PER_RUN else config["retrofit"]["seed"]
    spec = {**config["data"][name], "shuffle_seed": seed}
    return f"{RESULTS}/data/{name}.seed{seed}.jsonl", spec


def retrofit_memory(retrofit, seed=None):
    folder = RETROFIT_RUN.format(retrofit=retrofit, seed=seed)
    return f"{RESULTS}/models/{folder}/memory.safetensors"


def task_path(experiment, seed):
    """An experiment's training records: one file, or (the main task under per_run seeding)
    one shuffle per seed."""
    name = EXPERIMENTS[experiment]["task_dataset"]
    if PER_RUN and experiment == MAIN:
        return f"{RESULTS}/data/{name}.seed{seed}.jsonl"
    return dataset_path(name)


def run_dir(experiment, arm, seed):
    return f"{RESULTS}/{experiment}/runs/{arm}/seed{seed}"


def finetune_inputs(wildcards):
    """The base model and the task; a kind that trains on the retrofit model (the registry's
    needs_retrofit) also its memory and background statistics."""
    exp, arm, seed = wildcards.experiment, wildcards.arm, wildcards.seed
    inputs = {"base": f"{RESULTS}/models/base", "task": task_path(exp, seed)}
    if arm_kind(exp, arm).needs_retrofit:
        retrofit = retrofit_of(exp, arm)
        inputs["memory"] = retrofit_memory(retrofit, seed)
        inputs["background"] = f"{background_of(retrofit, seed)}/stats.safetensors"
    return inputs


def model_kind(experiment, model):
    if model == "base":
        return model
    if model in RETROFIT_MODELS:
        return "retrofit"
    return arm_kind(experiment, model.rsplit("-seed", 1)[0]).name


def model_artifact(experiment, model):
    """The file or folder that holds what a model adds to the base (None for the base)."""
    if model == "base":
        return None
    if model in RETROFIT_MODELS:
        name, _, seed = model.partition("-seed")
        return retrofit_memory(name, seed)
    arm, seed = model.rsplit("-seed", 1)
    return f"{run_dir(experiment, arm, seed)}/{arm_kind(experiment, arm).artifact}"


def model_fingerprint(experiment, model):
    """The config a model's results depend on: evaluate and report rules carry it in params,
    so a changed run config reruns them even after a failed retrain deleted the run."""
    if model == "base":
        return freshness.fingerprint(CHAIN, model)
    if model in RETROFIT_MODELS:
        variant = model.partition("-seed")[0].removeprefix("retrofit").lstrip("_")
        return freshness.fingerprint(
            CHAIN,
            model,
            freshness.variant_part(config, variant or None, background=False),
        )
    arm, seed = model.rsplit("-seed", 1)
    spec = EXPERIMENTS[experiment]
    run = [arm_spec(experiment, arm), arm_train_config(experiment, arm), int(seed)]
    # the values cached results were written with (main and further experiments differ in
    # what they hash), so that no result goes stale by this layout alone
    if experiment == MAIN:
        variant = arm_spec(experiment, arm).get("smf", {}).get("retrofit")
        return freshness.fingerprint(
            CHAIN, *run, spec["header"], freshness.variant_part(config, variant)
        )
    chain = freshness.chain_fingerprint(config, SMF_VERSION, spec["task_dataset"])
    return freshness.fingerprint(
        chain,
        config.get("fact_task"),
        experiment,
        *run,
        spec["header"],
        spec["task_kind"],
    )


def fingerprints(experiment, models):
    """{model: fingerprint}: a report rule's params (see model_fingerprint)."""
    return {model: model_fingerprint(experiment, model) for model in models}


def eval_inputs(wildcards):
    exp, model = wildcards.experiment, wildcards.model
    inputs = {"base": f"{RESULTS}/models/base"}
    specs = EXPERIMENTS[exp]["probe_specs"]
    for probe in eval_probes(exp, model):
        inputs[f"data_{probe}"] = dataset_path(specs[probe]["dataset"])
    artifact = model_artifact(exp, model)
    if artifact:
        inputs["artifact"] = artifact
    return inputs


def eval_file(experiment, model, probe, report_name=None):
    """Where an experiment reads a model's result on a probe (`report_name`: a file derived
    from it, {probe}_retention): its own folder, except the reference models' scores on
    probes it does not run on them itself, which are the main experiment's."""
    if model in reference_models(experiment) and probe not in own_probes(experiment):
        experiment = MAIN
    return f"{RESULTS}/{experiment}/eval/{model}/{report_name or probe}.json"


def eval_files(experiment, models):
    """The eval JSONs of these models on every probe of the experiment."""
    probes = EXPERIMENTS[experiment]["probes"]
    return [eval_file(experiment, m, p) for m in models for p in probes]


def report_eval_files(experiment, models):
    """Every eval JSON the experiment's report reads: the probes' and the retention files."""
    return [
        eval_file(experiment, m, p, name)
        for m in models
        for p in EXPERIMENTS[experiment]["probes"]
        for name in ([p, f"{p}_retention"] if p in RETENTION_PROBES else [p])
    ]


def table_models(experiment):
    """The models of an experiment's main table and figures: reference rows, then its arms'
    own learning rates (not their sweep points)."""
    spec = EXPERIMENTS[experiment]
    return reference_models(experiment) + run_models(experiment, spec["main_arms"])


def tradeoff_models(experiment):
    """The models of an experiment's trade-off report: the base model and every run."""
    return ["base"] + run_models(experiment)


def train_logs(experiment):
    """{arm: its seeds' training logs} of the experiment's main arms (the loss curves)."""
    return {
        arm: [
            f"{run_dir(experiment, arm, seed)}/train_log.jsonl"
            for seed in run_seeds(experiment, arm)
        ]
        for arm in EXPERIMENTS[experiment]["main_arms"]
    }


def smf_summaries(experiment):
    """The summary.json of every run of an smf-kind arm (their diagnostics), sweeps included."""
    spec = EXPERIMENTS[experiment]
    return [
        f"{run_dir(experiment, arm, seed)}/summary.json"
        for arm in spec["runs"]
        if spec["kinds"][arm] == "smf"
        for seed in spec["seeds"][arm]
    ]


def report_outputs(experiment):
    """What `all` and the experiment's named target build: its tables and figures."""
    out = f"{RESULTS}/{experiment}"
    suffixes = [""] + [
        f"_{p}" for p in EXPERIMENTS[experiment]["extra_learning_probes"]
    ]
    return [
        *(f"{out}/tables/main.{ext}" for ext in ("csv", "md", "tex")),
        *(f"{out}/tables/smf_diagnostics.{ext}" for ext in ("csv", "md")),
        *(
            f"{out}/figures/{name}.{ext}"
            for name in ("learning_vs_forgetting", "loss_curves")
            for ext in ("png", "pdf")
        ),
        *(
            path
            for s in suffixes
            for path in (
                f"{out}/tables/matched_learning{s}.csv",
                f"{out}/tables/matched_learning{s}.md",
                f"{out}/tables/learning_gains{s}.csv",
                f"{out}/tables/matched_differences{s}.csv",
                f"{out}/tables/gold_logprob{s}.csv",
                f"{out}/tables/gold_logprob{s}.md",
                f"{out}/tables/matched_gold{s}.csv",
                f"{out}/tables/matched_gold{s}.md",
                f"{out}/tables/matched_gold_differences{s}.csv",
                f"{out}/figures/pareto_fronts{s}.png",
                f"{out}/figures/pareto_fronts{s}.pdf",
                f"{out}/figures/pareto_fronts_gold{s}.png",
                f"{out}/figures/pareto_fronts_gold{s}.pdf",
            )
        ),
    ]


# `all` and an experiment's target request every run's log and summary and every eval JSON, so
# a deleted one is planned again (not only once something downstream reruns); rebuilding a log
# or summary retrains its run, which is said before any job starts
RUN_RECORDS = {
    exp: {
        f"{run}/{arm_kind(exp, arm).artifact}": [
            f"{run}/{name}" for name in ("train_log.jsonl", "summary.json")
        ]
        for arm in spec["runs"]
        for seed in spec["seeds"][arm]
        for run in [run_dir(exp, arm, seed)]
    }
    for exp, spec in EXPERIMENTS.items()
}
ALL_EVALS = {
    exp: eval_files(exp, reference_models(exp) + run_models(exp)) for exp in EXPERIMENTS
}
if workflow.is_main_process:
    freshness.warn(
        freshness.run_outputs_gaps(
            {k: v for r in RUN_RECORDS.values() for k, v in r.items()}
        )
        + freshness.eval_gaps(
            dict.fromkeys(p for paths in ALL_EVALS.values() for p in paths)
        )
    )


REAL_FACT_TASK = f"{RESULTS}/real_fact_task"
SLOT_OVERLAP = f"{REAL_FACT_TASK}/slot_overlap.json"  # rule slot_overlap


def reads_real_fact_task(entry):
    """Whether a `data` entry reads a file of the real-fact task (rules/real_fact_task.smk)."""
    path = (entry.get("source") or {}).get("path") or ""
    return str(path).startswith(f"{REAL_FACT_TASK}/")


def uses_real_fact_task(experiment):
    """Whether an experiment trains on or probes the real-fact task's files."""
    spec = EXPERIMENTS[experiment]
    names = [
        spec["task_dataset"],
        *(p.get("dataset") for p in spec["probe_specs"].values()),
    ]
    return any(reads_real_fact_task(config["data"].get(n) or {}) for n in names if n)


def experiment_targets(experiment):
    """Everything an experiment's target (and `all`) requests; an experiment on the real-fact
    task also its slot overlap."""
    return [
        *report_outputs(experiment),
        *(p for records in RUN_RECORDS[experiment].values() for p in records),
        *ALL_EVALS[experiment],
        *([SLOT_OVERLAP] if uses_real_fact_task(experiment) else []),
    ]


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
