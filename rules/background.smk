rule background:
    """Slot statistics (df and reads per slot) of the retrofitted model on background text."""
    input:
        base="results/models/base",
        memory=lambda wc: retrofit_memory(
            f"retrofit{wc.background.removeprefix('background')}"
        ),
        corpus=dataset_path(config["background"]["dataset"]),
    output:
        stats="results/{background}/stats.safetensors",
        summary="results/{background}/summary.json",
    log:
        "logs/{background}.log",
    benchmark:
        "results/benchmarks/{background}.tsv"
    conda:
        "../envs/smf.yaml"
    threads: SEQUENTIAL_STAGE_THREADS
    resources:
        gpu=GPU,
    params:
        max_length=config["background"]["max_length"],
        batch_size=config["background"]["batch_size"],
        description=lambda wc: json.dumps(
            config["data"][config["background"]["dataset"]], sort_keys=True
        ),
        device=DEVICE,
        code=SMF_VERSION,
    script:
        "../workflow/scripts/background.py"
