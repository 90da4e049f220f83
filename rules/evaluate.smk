rule evaluate:
    """One model on every probe (the model is loaded once): base, retrofit, or an arm x seed."""
    input:
        unpack(eval_inputs),
    output:
        expand("results/eval/{{model}}/{probe}.json", probe=PROBES),
    log:
        "logs/eval/{model}.log",
    benchmark:
        "results/benchmarks/eval/{model}.tsv"
    conda:
        "../envs/smf.yaml"
    resources:
        **job_resources("evaluate"),
        gpu=GPU,
    params:
        kind=lambda wc: model_kind(wc.model),
        run=lambda wc: model_fingerprint(wc.model),
        probes=config["probes"],
        batch_size=config["eval"]["batch_size"],
        dtype=config["eval"]["dtype"],
        memory_dtype=config["eval"]["memory_dtype"],
        header=config["task"]["header"],
        device=DEVICE,
        code=SMF_VERSION,
    script:
        "../workflow/scripts/evaluate.py"


for _arm, _runs in FAMILIES.items():

    rule:
        """Named target: one arm's branch (its sweep points too; all seeds, all probes)."""
        name:
            _arm
        default_target: False
        input:
            report_eval_files([m for run in _runs for m in arm_models(run)]),
