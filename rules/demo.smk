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
    params:
        out_dir=config["demo"]["out_dir"],
        seed=config["demo"]["seed"],
        code=SMF_VERSION,
    log:
        "logs/demo_world.log",
    script:
        "../workflow/scripts/demo_world.py"
