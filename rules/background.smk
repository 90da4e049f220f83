rule background:
    """Slot statistics (df and reads per slot) of the retrofitted model on background text
    (the top-level `background`, or a retrofit variant's own: background_<variant>)."""
    input:
        base="results/models/base",
        memory=lambda wc: retrofit_memory(
            f"retrofit{wc.background.removeprefix('background')}", wc.get("seed")
        ),
        corpus=lambda wc: background_corpus(wc)[0],
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
        max_length=lambda wc: background_settings(wc.background)["max_length"],
        batch_size=lambda wc: background_settings(wc.background)["batch_size"],
        precision=lambda wc: background_settings(wc.background)["precision"],
        # the data entry it counts (with the run's shuffle seed): changing it reruns
        description=lambda wc: json.dumps(background_corpus(wc)[1], sort_keys=True),
        device=DEVICE,
        code=SMF_VERSION,
    script:
        "../workflow/scripts/background.py"
