rule background:
    """Slot statistics (df and reads per slot) of the retrofitted model on background text."""
    input:
        base="results/models/base",
        memory=lambda wc: retrofit_memory(
            f"retrofit{wc.background.removeprefix('background')}", wc.get("seed")
        ),
        corpus=dataset_path(config["background"]["dataset"]),
    output:
        stats=f"results/{BACKGROUND_RUN}/stats.safetensors",
        summary=f"results/{BACKGROUND_RUN}/summary.json",
    log:
        f"logs/{BACKGROUND_RUN}.log",
    benchmark:
        f"results/benchmarks/{BACKGROUND_RUN}.tsv"
    conda:
        "../envs/smf.yaml"
    threads: SEQUENTIAL_STAGE_THREADS
    resources:
        **job_resources("background"),
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
