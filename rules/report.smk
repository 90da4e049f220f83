# Each experiment's report from its cached eval JSONs (no model is loaded): results/<experiment>/
# tables and figures.


rule tables:
    """An experiment's main table (its arms' own learning rates)."""
    input:
        lambda wc: report_eval_files(wc.experiment, table_models(wc.experiment)),
    output:
        csv=report(
            f"{RESULTS}/{{experiment}}/tables/main.csv",
            caption="../docs/report/table.rst",
            category="Tables",
        ),
        md=f"{RESULTS}/{{experiment}}/tables/main.md",
        tex=f"{RESULTS}/{{experiment}}/tables/main.tex",
    log:
        "logs/{experiment}/report/tables.log",
    conda:
        "../envs/smf.yaml"
    params:
        # after base and retrofit: the retrofit variants, then the arms
        arms=lambda wc: retrofits_of(wc.experiment)[1:]
        + EXPERIMENTS[wc.experiment]["main_arms"],
        probes=lambda wc: EXPERIMENTS[wc.experiment]["report_probes"],
        note=STD_NOTE,
        # a changed run config rebuilds the table
        runs=lambda wc: fingerprints(wc.experiment, table_models(wc.experiment)),
        code=SMF_VERSION,
    script:
        "../workflow/scripts/tables.py"


rule figures:
    """Learning vs forgetting per probe, and training loss curves per arm."""
    input:
        evals=lambda wc: report_eval_files(wc.experiment, table_models(wc.experiment)),
        logs=lambda wc: [
            p for paths in train_logs(wc.experiment).values() for p in paths
        ],
    output:
        tradeoff_png=report(
            f"{RESULTS}/{{experiment}}/figures/learning_vs_forgetting.png",
            caption="../docs/report/tradeoff.rst",
            category="Figures",
        ),
        tradeoff_pdf=f"{RESULTS}/{{experiment}}/figures/learning_vs_forgetting.pdf",
        loss_png=report(
            f"{RESULTS}/{{experiment}}/figures/loss_curves.png",
            caption="../docs/report/loss.rst",
            category="Figures",
        ),
        loss_pdf=f"{RESULTS}/{{experiment}}/figures/loss_curves.pdf",
    log:
        "logs/{experiment}/report/figures.log",
    conda:
        "../envs/smf.yaml"
    params:
        log_paths=lambda wc: train_logs(wc.experiment),
        learning_probe=lambda wc: EXPERIMENTS[wc.experiment]["learning_probe"],
        forgetting_probes=lambda wc: EXPERIMENTS[wc.experiment]["forgetting_probes"],
        runs=lambda wc: fingerprints(wc.experiment, table_models(wc.experiment)),
        code=SMF_VERSION,
    script:
        "../workflow/scripts/figures.py"


rule tradeoff:
    """Gains and forgetting with intervals; forgetting at learning levels; arm differences;
    what every SMF run did to its memory (smf_diagnostics)."""
    input:
        evals=lambda wc: report_eval_files(
            wc.experiment, tradeoff_models(wc.experiment)
        ),
        summaries=lambda wc: smf_summaries(wc.experiment),
    output:
        csv=f"{RESULTS}/{{experiment}}/tables/matched_learning.csv",
        md=f"{RESULTS}/{{experiment}}/tables/matched_learning.md",
        runs_csv=f"{RESULTS}/{{experiment}}/tables/learning_gains.csv",
        differences_csv=f"{RESULTS}/{{experiment}}/tables/matched_differences.csv",
        # the change in gold-answer log-prob per run; a one-line note where no probe keeps it
        gold_csv=f"{RESULTS}/{{experiment}}/tables/gold_logprob.csv",
        gold_md=f"{RESULTS}/{{experiment}}/tables/gold_logprob.md",
        # the trade-off matched on the learning probe's gold log-prob (a note without it)
        gold_matched_csv=f"{RESULTS}/{{experiment}}/tables/matched_gold.csv",
        gold_matched_md=f"{RESULTS}/{{experiment}}/tables/matched_gold.md",
        gold_matched_differences_csv=f"{RESULTS}/{{experiment}}/tables/matched_gold_differences.csv",
        gold_matched_png=f"{RESULTS}/{{experiment}}/figures/pareto_fronts_gold.png",
        gold_matched_pdf=f"{RESULTS}/{{experiment}}/figures/pareto_fronts_gold.pdf",
        # per SMF run and memory layer: slots read, rows selected, vacuous, memory/MLP output
        diag_csv=f"{RESULTS}/{{experiment}}/tables/smf_diagnostics.csv",
        diag_md=f"{RESULTS}/{{experiment}}/tables/smf_diagnostics.md",
        png=report(
            f"{RESULTS}/{{experiment}}/figures/pareto_fronts.png",
            caption="../docs/report/pareto.rst",
            category="Figures",
        ),
        pdf=f"{RESULTS}/{{experiment}}/figures/pareto_fronts.pdf",
    log:
        "logs/{experiment}/report/tradeoff.log",
    conda:
        "../envs/smf.yaml"
    params:
        families=lambda wc: EXPERIMENTS[wc.experiment]["families"],
        # tradeoff_extra: the extra learning probe in its file names
        learning_probe=lambda wc: wc.get("probe")
        or EXPERIMENTS[wc.experiment]["learning_probe"],
        forgetting_probes=lambda wc: EXPERIMENTS[wc.experiment]["forgetting_probes"],
        lrs=lambda wc: run_lrs(wc.experiment),
        learning_data=lambda wc: probe_data(
            wc.experiment,
            wc.get("probe") or EXPERIMENTS[wc.experiment]["learning_probe"],
        ),
        settings=config["tradeoff"],
        runs=lambda wc: fingerprints(wc.experiment, tradeoff_models(wc.experiment)),
        code=SMF_VERSION,
    script:
        "../workflow/scripts/tradeoff.py"


use rule tradeoff as tradeoff_extra with:
    input:
        evals=lambda wc: report_eval_files(
            wc.experiment, tradeoff_models(wc.experiment)
        ),
        summaries=[],
    output:
        csv=f"{RESULTS}/{{experiment}}/tables/matched_learning_{{probe}}.csv",
        md=f"{RESULTS}/{{experiment}}/tables/matched_learning_{{probe}}.md",
        runs_csv=f"{RESULTS}/{{experiment}}/tables/learning_gains_{{probe}}.csv",
        differences_csv=f"{RESULTS}/{{experiment}}/tables/matched_differences_{{probe}}.csv",
        gold_csv=f"{RESULTS}/{{experiment}}/tables/gold_logprob_{{probe}}.csv",
        gold_md=f"{RESULTS}/{{experiment}}/tables/gold_logprob_{{probe}}.md",
        gold_matched_csv=f"{RESULTS}/{{experiment}}/tables/matched_gold_{{probe}}.csv",
        gold_matched_md=f"{RESULTS}/{{experiment}}/tables/matched_gold_{{probe}}.md",
        gold_matched_differences_csv=f"{RESULTS}/{{experiment}}/tables/matched_gold_differences_{{probe}}.csv",
        gold_matched_png=f"{RESULTS}/{{experiment}}/figures/pareto_fronts_gold_{{probe}}.png",
        gold_matched_pdf=f"{RESULTS}/{{experiment}}/figures/pareto_fronts_gold_{{probe}}.pdf",
        png=f"{RESULTS}/{{experiment}}/figures/pareto_fronts_{{probe}}.png",
        pdf=f"{RESULTS}/{{experiment}}/figures/pareto_fronts_{{probe}}.pdf",
    log:
        "logs/{experiment}/report/tradeoff_{probe}.log",
    wildcard_constraints:
        # an extra learning probe of that experiment (its own trade-off report)
        probe=one_of(
            dict.fromkeys(
                p for e in EXPERIMENTS.values() for p in e["extra_learning_probes"]
            )
        ),


# Named targets: `snakemake <arm>` builds one arm of the main experiment with its sweep points
# (all seeds, all probes); `snakemake <experiment>` one experiment's runs, evals and report.
config_checks.check_experiment_names(
    {MAIN: "main_experiment", **{e: f"experiments.{e}" for e in config["experiments"]}},
    {
        **{rule.name: f"the name of rule {rule.name}" for rule in workflow.rules},
        **{arm: f"the target of arm arms.{arm}" for arm in FAMILIES},
        "all": "the name of rule all (the default target)",
    },
)


for _arm, _runs in FAMILIES.items():

    rule:
        """Named target: one arm's branch (its sweep points too; all seeds, all probes)."""
        name:
            _arm
        default_target: False
        input:
            report_eval_files(MAIN, run_models(MAIN, _runs)),


for _exp in EXPERIMENTS:

    rule:
        """Named target: one experiment's runs, evaluations, tables and figures."""
        name:
            _exp
        default_target: False
        input:
            experiment_targets(_exp),
