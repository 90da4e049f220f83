rule background:
    """Slot statistics (df and reads per slot) of the retrofitted model on background text."""
    input:
        base="results/models/base",
        memory=lambda wc: retrofit_memory(
            "retrofit" + wc.background.removeprefix("background"), wc.get("seed")
        ),
        corpus=dataset_path(config["background"]["dataset"]),
    output:
        stats=f"results/{{background}}{SEED_DIR}/stats.safetensors",
        summary=f"results/{{background}}{SEED_DIR}/summary.json",
    log:
        f"logs/{{background}}{SEED_DIR}.log",
    benchmark:
        f"results/benchmarks/{{background}}{SEED_DIR}.tsv"
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
