rule retrofit:
    """Attach memory layers to the frozen base and recover them on general text (the main
    retrofit model, or a `retrofit_variants` entry as retrofit_<variant>)."""
    input:
        base="results/models/base",
        recovery=dataset_path(config["retrofit"]["recovery"]["dataset"]),
    output:
        memory=f"results/models/{RETROFIT_RUN}/memory.safetensors",
        config=f"results/models/{RETROFIT_RUN}/memory.json",
        log=f"results/models/{RETROFIT_RUN}/recovery_log.jsonl",
    log:
        f"logs/{RETROFIT_RUN}.log",
    benchmark:
        f"results/benchmarks/{RETROFIT_RUN}.tsv"
    conda:
        "../envs/smf.yaml"
    threads: SEQUENTIAL_STAGE_THREADS
    resources:
        **job_resources("retrofit"),
        gpu=GPU,
    params:
        retrofit=retrofit_config,
        train=train_config(config["retrofit"]["recovery"]["train"]),
        device=DEVICE,
        work_dir=lambda wc: checkpoint_dir(
            RETROFIT_RUN.format(retrofit=wc.retrofit, seed=wc.get("seed"))
        ),
        code=SMF_VERSION,
    script:
        "../workflow/scripts/retrofit.py"
