rule retention_set:
    """The qa questions the base model answers correctly: fixed once, then cached."""
    input:
        "results/eval/base/{probe}.json",
    output:
        "results/retention/{probe}.json",
    log:
        "logs/retention/{probe}.log",
    conda:
        "../envs/smf.yaml"
    params:
        run=model_fingerprint("base"),
        code=SMF_VERSION,
    script:
        "../workflow/scripts/retention_set.py"


rule retention:
    """A model's accuracy on the retained questions, from its cached answers."""
    input:
        answers="results/eval/{model}/{probe}.json",
        retained="results/retention/{probe}.json",
    output:
        "results/eval/{model}/{probe}_retention.json",
    log:
        "logs/retention/{model}/{probe}.log",
    conda:
        "../envs/smf.yaml"
    params:
        run=lambda wc: model_fingerprint(wc.model),
        code=SMF_VERSION,
    script:
        "../workflow/scripts/retention.py"
