rule prepare_data:
    """One configured dataset (hub id or local file) into its JSONL schema."""
    input:
        source_inputs,
    output:
        # update: Snakemake keeps the cached file while the job runs and puts it back if the
        # job fails (a bad source record), so a fixable mistake costs no cached data
        update("results/data/{dataset}.jsonl"),
        stats=update("results/data/{dataset}.stats.json"),
    log:
        "logs/data/{dataset}.log",
    conda:
        "../envs/smf.yaml"
    params:
        spec=lambda wc: config["data"][wc.dataset],
        code=SMF_VERSION,
    script:
        "../workflow/scripts/prepare_data.py"


use rule prepare_data as prepare_task_shuffle with:
    output:
        update("results/data/{dataset}.seed{seed}.jsonl"),
        stats=update("results/data/{dataset}.seed{seed}.stats.json"),
    log:
        "logs/data/{dataset}.seed{seed}.log",
    params:
        spec=lambda wc: {**config["data"][wc.dataset], "shuffle_seed": int(wc.seed)},
        code=SMF_VERSION,
