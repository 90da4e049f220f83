rule retention_set:
    """The qa questions the base model answers correctly: fixed once, then cached."""
    input:
        f"{RESULTS}/{MAIN}/eval/base/{{probe}}.json",
    output:
        "results/retention/{probe}.json",
    log:
        "logs/retention/{probe}.log",
    conda:
        "../envs/smf.yaml"
    params:
        run=model_fingerprint(MAIN, "base"),
        code=SMF_VERSION,
    script:
        "../workflow/scripts/retention_set.py"


rule retention:
    """A model's accuracy on the retained questions, from its cached answers."""
    input:
        answers=lambda wc: eval_file(wc.experiment, wc.model, wc.probe),
        retained="results/retention/{probe}.json",
    output:
        f"{RESULTS}/{{experiment}}/eval/{{model}}/{{probe}}_retention.json",
    log:
        "logs/{experiment}/retention/{model}/{probe}.log",
    wildcard_constraints:
        probe=one_of(RETENTION_PROBES),
    conda:
        "../envs/smf.yaml"
    params:
        run=lambda wc: model_fingerprint(wc.experiment, wc.model),
        code=SMF_VERSION,
    script:
        "../workflow/scripts/retention.py"
