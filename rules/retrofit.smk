rule retrofit:
    """Attach memory layers to the frozen base and recover them on general text (the main
    retrofit model, or a `retrofit_variants` entry as retrofit_<variant>)."""
    input:
        base="results/models/base",
        recovery=dataset_path(config["retrofit"]["recovery"]["dataset"]),
    output:
        memory="results/models/{retrofit}/memory.safetensors",
        config="results/models/{retrofit}/memory.json",
        log="results/models/{retrofit}/recovery_log.jsonl",
    log:
        "logs/{retrofit}.log",
    benchmark:
        "results/benchmarks/{retrofit}.tsv"
    conda:
        "../envs/smf.yaml"
    threads: SEQUENTIAL_STAGE_THREADS
    resources:
        gpu=GPU,
    params:
        retrofit=lambda wc: retrofit_config(wc.retrofit),
        train=train_config(config["retrofit"]["recovery"]["train"]),
        device=DEVICE,
        work_dir=lambda wc: checkpoint_dir(wc.retrofit),
        code=SMF_VERSION,
    script:
        "../workflow/scripts/retrofit.py"
