rule prepare_data:
    """One configured dataset (hub id or local file) into its JSONL schema."""
    input:
        source_inputs,
    output:
        "results/data/{dataset}.jsonl",
        stats="results/data/{dataset}.stats.json",
    log:
        "logs/data/{dataset}.log",
    conda:
        "../envs/smf.yaml"
    params:
        spec=lambda wc: config["data"][wc.dataset],
        code=SMF_VERSION,
    script:
        "../workflow/scripts/prepare_data.py"
