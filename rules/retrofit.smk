rule retrofit:
    """Attach memory layers to the frozen base and recover them on general text (the main
    retrofit model, or a `retrofit_variants` entry as retrofit_<variant>)."""
    input:
        base="results/models/base",
        recovery=dataset_path(config["retrofit"]["recovery"]["dataset"]),
    output:
        memory=f"results/models/{{retrofit}}{SEED_DIR}/memory.safetensors",
        config=f"results/models/{{retrofit}}{SEED_DIR}/memory.json",
        log=f"results/models/{{retrofit}}{SEED_DIR}/recovery_log.jsonl",
    log:
        f"logs/{{retrofit}}{SEED_DIR}.log",
    benchmark:
        f"results/benchmarks/{{retrofit}}{SEED_DIR}.tsv"
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
        work_dir=lambda wc: checkpoint_dir(wc.retrofit + seed_folder(wc.get("seed"))),
        code=SMF_VERSION,
    script:
        "../workflow/scripts/retrofit.py"
