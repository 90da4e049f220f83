rule background:
    """Slot statistics (df and reads per slot) of the retrofitted model on background text."""
    input:
        base=RESULTS + "/models/base",
        memory=rules.retrofit.output.memory,
        corpus=dataset_path(config["background"]["dataset"]),
    output:
        stats=RESULTS + "/background/stats.safetensors",
        summary=RESULTS + "/background/summary.json",
    params:
        max_length=config["background"]["max_length"],
        batch_size=config["background"]["batch_size"],
        description=lambda wc: json.dumps(
            config["data"][config["background"]["dataset"]], sort_keys=True
        ),
        device=DEVICE,
        code=SMF_VERSION,
    threads: workflow.cores
    resources:
        gpu=GPU,
    log:
        "logs/background.log",
    benchmark:
        "benchmarks/background.tsv"
    script:
        "../workflow/scripts/background.py"
