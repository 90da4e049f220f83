# Further experiments (config `experiments`, e.g. paper 1's fact learning): each trains its own
# arms on its own task and writes under results/<name>/. They share the base model, the main
# retrofit and its background statistics, and the main experiment's scores of the reference
# models (base, retrofit) on the forgetting probes. The rules are the main experiment's, one
# set per experiment (names end in _<experiment>), and call the same scripts.

config_checks.check_experiment_names(
    EXPERIMENTS,
    {
        **{rule.name: f"the name of rule {rule.name}" for rule in workflow.rules},
        **{arm: f"the target of arm arms.{arm}" for arm in FAMILIES},
        "all": "the name of rule all (the default target)",
    },
)


def exp_arm(exp, arm):
    return config["experiments"][exp]["arms"][arm]


def exp_train_config(exp, arm):
    """Top-level `train:`, then the experiment's, then the arm's."""
    spec = config["experiments"][exp]
    return {
        **config["train"],
        **spec.get("train", {}),
        **exp_arm(exp, arm).get("train", {}),
    }


def exp_arms_of_kind(exp, kind):
    runs = EXPERIMENTS[exp]["runs"]
    return [a for a in runs if exp_arm(exp, a)["kind"] == kind] or ["__none__"]


def exp_models(exp, runs=None):
    runs = EXPERIMENTS[exp]["runs"] if runs is None else runs
    return [f"{arm}-seed{seed}" for arm in runs for seed in SEEDS]


def exp_eval_file(exp, model, probe):
    """Its own probes and its arms' scores under results/<exp>/eval; the reference models'
    forgetting scores are the main experiment's."""
    own = probe in config["experiments"][exp]["probes"]
    if not own and model in EXP_REFERENCE_MODELS:
        return f"{RESULTS}/eval/{model}/{probe}.json"
    return f"{RESULTS}/{exp}/eval/{model}/{probe}.json"


def exp_report_files(exp, runs=None):
    probes = EXPERIMENTS[exp]["probes"]
    models = EXP_REFERENCE_MODELS + exp_models(exp, runs)
    return [exp_eval_file(exp, m, p) for m in models for p in probes]


def exp_eval_inputs(exp, probes):
    def inputs(wildcards):
        specs = {**config["probes"], **config["experiments"][exp]["probes"]}
        out = {"base": f"{RESULTS}/models/base"}
        out.update({f"data_{p}": dataset_path(specs[p]["dataset"]) for p in probes})
        model = wildcards.model
        if model in EXP_REFERENCE_MODELS:
            artifact = model_artifact(model)
        else:
            arm, seed = model.rsplit("-seed", 1)
            run = f"{RESULTS}/{exp}/runs/{arm}/seed{seed}"
            artifact = f"{run}/{ARTIFACTS[exp_arm(exp, arm)['kind']]}"
        if artifact:
            out["artifact"] = artifact
        return out

    return inputs


def exp_fingerprints(exp, models):
    """{model: fingerprint} of an experiment's models (see model_fingerprint)."""
    spec = EXPERIMENTS[exp]
    out = {}
    for model in models:
        if model in EXP_REFERENCE_MODELS:
            out[model] = model_fingerprint(model)
            continue
        arm, seed = model.rsplit("-seed", 1)
        run = [exp_arm(exp, arm), exp_train_config(exp, arm), int(seed)]
        chain = freshness.chain_fingerprint(config, SMF_VERSION, spec["task_dataset"])
        out[model] = freshness.fingerprint(
            chain, config.get("fact_task"), exp, *run, spec["header"], spec["task_kind"]
        )
    return out


def exp_model_kind(exp, model):
    if model in EXP_REFERENCE_MODELS:
        return model_kind(model)
    return exp_arm(exp, model.rsplit("-seed", 1)[0])["kind"]


ARTIFACTS = {"full": "model", "lora": "adapter", "smf": "memory.safetensors"}
# what `all` and an experiment's named target build
EXP_TARGETS = {
    exp: [
        f"{RESULTS}/{exp}/tables/main.csv",
        f"{RESULTS}/{exp}/figures/loss_curves.png",
        f"{RESULTS}/{exp}/tables/matched_learning.csv",
        *(
            f"{RESULTS}/{exp}/tables/matched_learning_{p}.csv"
            for p in EXPERIMENTS[exp]["extra_learning_probes"]
        ),
    ]
    for exp in EXPERIMENTS
}

# `all` requests every run's log and summary and every eval JSON, so a deleted one is planned
# again (not only once something downstream reruns); rebuilding a log or summary retrains its
# run, which is said before any job starts
RUN_RECORDS = {
    f"{RESULTS}/{folder}/{arm}/seed{seed}/{artifact}": [
        f"{RESULTS}/{folder}/{arm}/seed{seed}/{name}"
        for name in ("train_log.jsonl", "summary.json")
    ]
    for folder, runs, kind_of in [("runs", ARMS, ARM_KINDS.get)]
    + [
        (f"{exp}/runs", spec["runs"], lambda a, exp=exp: exp_arm(exp, a)["kind"])
        for exp, spec in EXPERIMENTS.items()
    ]
    for arm in runs
    for seed in SEEDS
    for artifact in [ARTIFACTS[kind_of(arm)]]
}
ALL_EVALS = eval_files(MODELS) + [
    path for exp in EXPERIMENTS for path in exp_report_files(exp)
]
if workflow.is_main_process:
    freshness.warn(
        freshness.run_outputs_gaps(RUN_RECORDS) + freshness.eval_gaps(ALL_EVALS)
    )


for _exp, _spec in EXPERIMENTS.items():
    _out = f"{RESULTS}/{_exp}"

    for _kind, _artifact in ARTIFACTS.items():

        rule:
            """One arm x seed of an experiment (see rules/finetune.smk)."""
            name:
                f"finetune_{_kind}_{_exp}"
            input:
                **(
                    {
                        "memory": lambda wc: retrofit_memory("retrofit", wc.seed),
                        "background": lambda wc: f"{background_of('retrofit', wc.seed)}/stats.safetensors",
                    }
                    if _kind == "smf"
                    else {}
                ),
                base="results/models/base",
                task=dataset_path(_spec["task_dataset"]),
            output:
                artifact=(
                    f"{_out}/runs/{{arm}}/seed{{seed}}/{_artifact}"
                    if _kind == "smf"
                    else directory(f"{_out}/runs/{{arm}}/seed{{seed}}/{_artifact}")
                ),
                log=f"{_out}/runs/{{arm}}/seed{{seed}}/train_log.jsonl",
                summary=f"{_out}/runs/{{arm}}/seed{{seed}}/summary.json",
            log:
                f"logs/{_exp}/finetune/{{arm}}/seed{{seed}}.log",
            benchmark:
                f"{_out}/benchmarks/finetune/{{arm}}/seed{{seed}}.tsv"
            wildcard_constraints:
                arm=one_of(exp_arms_of_kind(_exp, _kind)),
            conda:
                "../envs/smf.yaml"
            resources:
                **job_resources("finetune"),
                gpu=GPU,
            params:
                arm_cfg=lambda wc, exp=_exp: exp_arm(exp, wc.arm),
                train=lambda wc, exp=_exp: exp_train_config(exp, wc.arm),
                header=_spec["header"],
                task_kind=_spec["task_kind"],
                device=DEVICE,
                work_dir=lambda wc, exp=_exp: checkpoint_dir(
                    exp, "runs", wc.arm, f"seed{wc.seed}"
                ),
                code=SMF_VERSION,
            script:
                "../workflow/scripts/finetune.py"

    for _which, _models, _probes in (
        ("reference", EXP_REFERENCE_MODELS, list(_spec["own_probes"])),
        ("arms", exp_models(_exp), _spec["probes"]),
    ):

        rule:
            """Reference models on the experiment's own probes; its arms on all of its probes."""
            name:
                f"evaluate_{_which}_{_exp}"
            input:
                unpack(exp_eval_inputs(_exp, _probes)),
            output:
                [f"{_out}/eval/{{model}}/{p}.json" for p in _probes],
            log:
                f"logs/{_exp}/eval/{{model}}.log",
            benchmark:
                f"{_out}/benchmarks/eval/{{model}}.tsv"
            wildcard_constraints:
                model=one_of(_models),
            conda:
                "../envs/smf.yaml"
            resources:
                **job_resources("evaluate"),
                gpu=GPU,
            params:
                kind=lambda wc, exp=_exp: exp_model_kind(exp, wc.model),
                run=lambda wc, exp=_exp: exp_fingerprints(exp, [wc.model])[wc.model],
                probes={
                    p: {**config["probes"], **config["experiments"][_exp]["probes"]}[p]
                    for p in _probes
                },
                batch_size=config["eval"]["batch_size"],
                dtype=config["eval"]["dtype"],
                memory_dtype=config["eval"]["memory_dtype"],
                header=_spec["header"],
                device=DEVICE,
                code=SMF_VERSION,
            script:
                "../workflow/scripts/evaluate.py"

    rule:
        """An experiment's main table (its arms' own learning rates)."""
        name:
            f"tables_{_exp}"
        input:
            exp_report_files(_exp, _spec["main_arms"]),
        output:
            csv=f"{_out}/tables/main.csv",
            md=f"{_out}/tables/main.md",
            tex=f"{_out}/tables/main.tex",
        log:
            f"logs/{_exp}/report/tables.log",
        conda:
            "../envs/smf.yaml"
        params:
            arms=_spec["main_arms"],
            probes=_spec["probes"],
            note=STD_NOTE,
            runs=exp_fingerprints(
                _exp, EXP_REFERENCE_MODELS + exp_models(_exp, _spec["main_arms"])
            ),
            code=SMF_VERSION,
        script:
            "../workflow/scripts/tables.py"

    rule:
        """An experiment's learning vs forgetting and loss curves."""
        name:
            f"figures_{_exp}"
        input:
            evals=exp_report_files(_exp, _spec["main_arms"]),
            logs=expand(
                f"{_out}/runs/{{arm}}/seed{{seed}}/train_log.jsonl",
                arm=_spec["main_arms"],
                seed=SEEDS,
            ),
        output:
            tradeoff_png=f"{_out}/figures/learning_vs_forgetting.png",
            tradeoff_pdf=f"{_out}/figures/learning_vs_forgetting.pdf",
            loss_png=f"{_out}/figures/loss_curves.png",
            loss_pdf=f"{_out}/figures/loss_curves.pdf",
        log:
            f"logs/{_exp}/report/figures.log",
        conda:
            "../envs/smf.yaml"
        params:
            log_paths={
                arm: [
                    f"{_out}/runs/{arm}/seed{seed}/train_log.jsonl" for seed in SEEDS
                ]
                for arm in _spec["main_arms"]
            },
            learning_probe=_spec["learning_probe"],
            forgetting_probes=_spec["forgetting_probes"],
            runs=exp_fingerprints(_exp, exp_models(_exp, _spec["main_arms"])),
            code=SMF_VERSION,
        script:
            "../workflow/scripts/figures.py"

    # Pareto fronts and matched learning on its learning probe, and (one rule with a {probe}
    # wildcard) on each of its extra learning probes, whose files end in _<probe>
    _tradeoffs = [(f"tradeoff_{_exp}", "", _spec["learning_probe"])]
    if _spec["extra_learning_probes"]:
        _tradeoffs.append(
            (f"tradeoff_extra_{_exp}", "_{probe}", lambda wc: wc.probe)
        )
    for _name, _suffix, _learning in _tradeoffs:

        rule:
            """An experiment's Pareto fronts and forgetting at matched learning."""
            name:
                _name
            input:
                exp_report_files(_exp),
            output:
                csv=f"{_out}/tables/matched_learning{_suffix}.csv",
                md=f"{_out}/tables/matched_learning{_suffix}.md",
                runs_csv=f"{_out}/tables/learning_gains{_suffix}.csv",
                differences_csv=f"{_out}/tables/matched_differences{_suffix}.csv",
                png=f"{_out}/figures/pareto_fronts{_suffix}.png",
                pdf=f"{_out}/figures/pareto_fronts{_suffix}.pdf",
            log:
                f"logs/{_exp}/report/tradeoff{_suffix}.log",
            wildcard_constraints:
                probe=one_of(_spec["extra_learning_probes"]),
            conda:
                "../envs/smf.yaml"
            params:
                families=_spec["families"],
                learning_probe=_learning,
                forgetting_probes=_spec["forgetting_probes"],
                settings=config["tradeoff"],
                runs=exp_fingerprints(_exp, EXP_REFERENCE_MODELS + exp_models(_exp)),
                code=SMF_VERSION,
            script:
                "../workflow/scripts/tradeoff.py"

    rule:
        """Named target: one experiment's tables and figures."""
        name:
            _exp
        default_target: False
        input:
            EXP_TARGETS[_exp],
            [
                path
                for artifact, records in RUN_RECORDS.items()
                if artifact.startswith(f"{_out}/runs/")
                for path in records
            ],
            exp_report_files(_exp),
