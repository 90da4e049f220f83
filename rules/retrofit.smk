rule retrofit:
    """Attach memory layers to the frozen base and recover them on general text."""
    input:
        base=RESULTS + "/models/base",
        recovery=dataset_path(config["retrofit"]["recovery"]["dataset"]),
    output:
        memory=RESULTS + "/models/retrofit/memory.safetensors",
        config=RESULTS + "/models/retrofit/memory.json",
        log=RESULTS + "/models/retrofit/recovery_log.jsonl",
    params:
        retrofit={k: v for k, v in config["retrofit"].items() if k != "recovery"},
        train=train_config(config["retrofit"]["recovery"]["train"]),
        device=DEVICE,
        work_dir=checkpoint_dir("retrofit"),
        code=SMF_VERSION,
    threads: workflow.cores
    resources:
        gpu=GPU,
    log:
        "logs/retrofit.log",
    benchmark:
        "benchmarks/retrofit.tsv"
    script:
        "../workflow/scripts/retrofit.py"
