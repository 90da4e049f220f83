rule base_model:
    """The base model and tokenizer, saved locally (demo: built and pretrained here)."""
    input:
        pretrain=(
            f"{config['demo']['out_dir']}/pretrain.jsonl"
            if config["base"]["model"] == "demo"
            else []
        ),
    output:
        directory(RESULTS + "/models/base"),
    params:
        base=config["base"],
        device=DEVICE,
        work_dir=checkpoint_dir("base"),
        code=SMF_VERSION,
    threads: workflow.cores
    resources:
        gpu=GPU,
    log:
        "logs/base_model.log",
    benchmark:
        "benchmarks/base_model.tsv"
    script:
        "../workflow/scripts/base_model.py"
