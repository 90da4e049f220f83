# Sparse Memory Finetuning: reproduction pipeline (see README.md).
#   snakemake --cores 1 all                                 # paper profile (hub + GPU)
#   snakemake --cores 2 all --configfile config/demo.yaml  # offline demo on a CPU


from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/demo.smk"
include: "rules/data.smk"
include: "rules/base.smk"
include: "rules/retrofit.smk"
include: "rules/background.smk"
include: "rules/finetune.smk"
include: "rules/evaluate.smk"
include: "rules/retention.smk"
include: "rules/report.smk"
include: "rules/fact_task.smk"
include: "rules/real_fact_task.smk"


# On a cluster these run where Snakemake runs, not as jobs: they are quick, need no GPU, and
# the data ones download from the hub, which compute nodes often cannot reach.
localrules:
    demo_world,
    prepare_data,
    prepare_task_shuffle,
    retention_set,
    retention,
    tables,
    figures,
    tradeoff,
    tradeoff_extra,
    fact_task,
    real_fact_task,


rule all:
    default_target: True
    input:
        # every experiment's tables and figures, and every run's log and summary and every eval
        # JSON, so that a deleted one is rebuilt (rules/common.smk)
        [path for exp in ALL_EXPERIMENTS for path in experiment_targets(exp)],
