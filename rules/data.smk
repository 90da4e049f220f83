rule prepare_data:
    """One configured dataset (hub id or local file) into its JSONL schema."""
    input:
        source_inputs,
    output:
        RESULTS + "/data/{dataset}.jsonl",
        stats=RESULTS + "/data/{dataset}.stats.json",
    params:
        spec=lambda wc: config["data"][wc.dataset],
        code=SMF_VERSION,
    log:
        "logs/data/{dataset}.log",
    script:
        "../workflow/scripts/prepare_data.py"
