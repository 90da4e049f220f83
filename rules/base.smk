rule base_model:
    """The base model and tokenizer, saved locally (demo: built and pretrained here)."""
    input:
        pretrain=(
            f"{config['demo']['out_dir']}/pretrain.jsonl"
            if config["base"]["model"] == "demo"
            else []
        ),
        gguf=(
            config["base"]["model"]
            if smf.data.gguf.is_gguf(config["base"]["model"])
            else []
        ),
    output:
        directory("results/models/base"),
    log:
        "logs/base_model.log",
    benchmark:
        "results/benchmarks/base_model.tsv"
    conda:
        "../envs/smf.yaml"
    threads: SEQUENTIAL_STAGE_THREADS
    resources:
        **job_resources("base_model"),
        gpu=GPU,
    params:
        base=config["base"],
        device=DEVICE,
        work_dir=checkpoint_dir("base"),
        code=SMF_VERSION,
    script:
        "../workflow/scripts/base_model.py"
