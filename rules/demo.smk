rule demo_world:
    """The demo's fictional world, written in the real datasets' schemas."""
    output:
        expand(
            "{out}/{name}.jsonl",
            out=config["demo"]["out_dir"],
            name=[
                "medmcqa_train",
                "medmcqa_validation",
                "triviaqa_validation",
                "wikitext_test",
                "background",
                "oasst1",
                "pretrain",
            ],
        ),
    log:
        "logs/demo_world.log",
    conda:
        "../envs/smf.yaml"
    params:
        out_dir=lambda wc, output: os.path.dirname(output[0]),
        seed=config["demo"]["seed"],
        code=SMF_VERSION,
    script:
        "../workflow/scripts/demo_world.py"
